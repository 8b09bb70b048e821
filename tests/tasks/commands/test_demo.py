"""The demo path at reduced size: every output is written and the report is complete."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from anymae.tasks.commands.demo import format_report, run_demo

pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_at_reduced_size_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_demo(tmp_path, max_steps=3, n_per_photo=16, n_train_per_photo=8, n_test_per_photo=4, probe_epochs=1)
    assert report.steps == 3
    assert set(report.rows) == {"pretrained", "random init"}
    for row in report.rows.values():
        assert set(row) == {"recon_loss", "knn_cls", "knn_mean", "linear_cls", "linear_mean"}
        assert all(math.isfinite(v) for v in row.values())
    # predicting each hidden patch's own mean (zeros in norm_pix space) costs (P-1)/P = 47/48
    assert report.baselines["patch_mean"] == pytest.approx(47 / 48, abs=0.01)
    assert report.baselines["num_classes"] == 10
    for name in ("reconstruction.png", "embedding.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG"
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 3
    assert (tmp_path / "pretrain" / "last.pt").exists() and (tmp_path / "pretrain" / "metrics.csv").exists()
    out = capsys.readouterr().out
    assert format_report(report) in out and f"outputs in {tmp_path}" in out


def test_demo_replaces_only_its_own_previous_run(tmp_path: Path) -> None:
    from anymae.tasks.commands.demo import _clear_previous_demo

    run = tmp_path / "pretrain"
    run.mkdir()
    (run / "config.yaml").write_text("data:\n  source: demo_photos\n")
    _clear_previous_demo(run)
    assert not run.exists()
    run.mkdir()
    (run / "config.yaml").write_text("data:\n  source: image_folder\n")
    with pytest.raises(FileExistsError, match="not an earlier demo run"):
        _clear_previous_demo(run)
    assert run.exists()
