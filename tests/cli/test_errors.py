"""A user's mistakes get one line on stderr and a non-zero exit from every command, never a traceback;
`--traceback` / `ANYMAE_TRACEBACK=1` show it. Non-finite weights are never written or accepted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from anymae.cli import main
from anymae.datasets.image.synthetic import write_image_folder, write_truncated_jpeg
from anymae.extras import require
from anymae.tasks.train.checkpoint import CheckpointError, load_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = ["model.name=mae_vit_tiny_patch4", "model.depth=1", "model.decoder_depth=1", "model.embed_dim=32",
        "model.decoder_embed_dim=16"]
SMALL_RUN = ["data.source=synthetic_images", "data.n=16", "data.img_size=32", "optim.batch_size=4", "optim.epochs=1",
             "optim.warmup_epochs=0", "run.num_workers=0", "run.tensorboard=false", "run.precision=fp32"]
DATA = ["data.source=synthetic_images", "data.n=8", "data.img_size=32", "run.num_workers=0"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image run (2 steps), a 0-byte checkpoint and one whose weights hold NaN."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("errors")
    assert main(["pretrain", *TINY, *SMALL_RUN, "run.max_steps=2", f"run.out_dir={root / 'run'}"]) == 0
    state = load_checkpoint(root / "run" / "last.pt")
    state["model"]["decoder.mask_token"][..., 3] = float("nan")
    torch.save(state, root / "nan.pt")  # as a diverged run of another tool would: not through save_checkpoint
    (root / "empty.pt").write_bytes(b"")
    return root


def _error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    """The one error line on stderr (info lines and progress bars may come before it; no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err
    assert lines[0].startswith(f"anymae {command}: error: ")
    return lines[0][len(f"anymae {command}: error: "):]


def _commands(ckpt: Path, tmp: Path) -> dict[str, list[str]]:
    """Every command that reads a pretraining checkpoint, on tiny settings."""
    return {
        "export": ["export", "--checkpoint", str(ckpt), "--out", str(tmp / "e.pth")],
        "reconstruct": ["reconstruct", "--checkpoint", str(ckpt), "--out", str(tmp / "r.png")],
        "probe": ["probe", "--checkpoint", str(ckpt), *DATA, "probe.protocols=[knn]"],
        "finetune": ["finetune", "--checkpoint", str(ckpt), *DATA, "finetune.num_classes=2",
                     f"run.out_dir={tmp / 'ft'}"],
    }


@pytest.mark.parametrize("command", ["export", "reconstruct", "probe", "finetune"])
def test_an_empty_checkpoint_is_one_line(root: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_commands(root / "empty.pt", root)[command]) == 1
    line = _error_line(capsys, command)
    assert line == f"checkpoint '{root / 'empty.pt'}' is empty (0 bytes): the write that made it did not finish"


@pytest.mark.parametrize("command", ["export", "reconstruct", "probe", "finetune"])
def test_non_finite_weights_are_refused_by_every_command(root: Path, command: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_commands(root / "nan.pt", root)[command]) == 1
    line = _error_line(capsys, command)
    assert line.startswith(f"checkpoint '{root / 'nan.pt'}' holds NaN/Inf values in 1 tensor(s): "
                           "model.decoder.mask_token (1 of 16); the weights are unusable")
    assert not (root / "e.pth").exists() and not (root / "r.png").exists()


def test_a_diverged_run_fails_with_one_line_and_leaves_no_checkpoint(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # lr 1e30: step 1 blows the weights up, step 2's loss is not finite; 1 skip of 4 steps > 10%
    args = ["pretrain", *TINY, *SMALL_RUN, "optim.lr=1e30", "run.on_nan=skip", f"run.out_dir={tmp_path}"]
    assert main(args) == 1
    line = _error_line(capsys, "pretrain")
    assert line.startswith("on_nan='skip' dropped 1 of the run's 4 optimizer steps for a non-finite loss (the "
                           "last at step 2), more than run.max_skipped_fraction=0.1")
    assert line.endswith(f"no checkpoint was written to '{tmp_path}' yet, so the run must start again")
    assert not (tmp_path / "last.pt").exists()


def test_a_data_error_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = write_image_folder(tmp_path / "images", 3, 1, size=40, fmt="png")
    bad = write_truncated_jpeg(images / "class_0" / "bad.jpg")
    data = ["data.source=image_folder", f"data.root={images}", "data.img_size=32"]  # 4 files: one batch
    run = ["optim.batch_size=4", "run.num_workers=0", "run.tensorboard=false", f"run.out_dir={tmp_path / 'run'}"]
    assert main(["pretrain", *TINY, *data, *run]) == 1
    assert str(bad) in _error_line(capsys, "pretrain")


def test_out_dir_that_is_a_file_or_not_writable(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["pretrain", *TINY, *SMALL_RUN, f"run.out_dir={tmp_path / 'file'}"]) == 1
    assert _error_line(capsys, "pretrain") == (f"run.out_dir: '{tmp_path / 'file'}' is a file, not a directory; "
                                               "choose another path")
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr("anymae.core.io.os.access", lambda path, mode: Path(path) != locked)  # root writes anywhere
    assert main(["pretrain", *TINY, *SMALL_RUN, f"run.out_dir={locked}"]) == 1
    assert _error_line(capsys, "pretrain") == (f"run.out_dir: '{locked}' is not writable (permission denied); "
                                               "choose another path")


def test_resume_with_nothing_to_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", *TINY, *SMALL_RUN, f"run.out_dir={tmp_path / 'typo'}", "--resume"]) == 1
    assert _error_line(capsys, "pretrain").startswith(f"nothing to resume: run.out_dir '{tmp_path / 'typo'}' holds "
                                                      "no last.pt or step_*.pt")


def test_range_errors_name_their_own_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", *TINY, *SMALL_RUN, "model.mask_ratio=1.5", f"run.out_dir={tmp_path}"]) == 2
    assert _error_line(capsys, "pretrain") == ("config key 'model.mask_ratio': expected a mask ratio in (0, 1) "
                                               "(the share of tokens hidden), got 1.5")
    assert main(["pretrain", *TINY, *SMALL_RUN, "run.max_steps=0", f"run.out_dir={tmp_path}", "--print-config"]) == 2
    line = _error_line(capsys, "pretrain")
    assert line == ("invalid config key 'run.max_steps' (from override 'run.max_steps=0') (RunConfig): "
                    "max_steps=0: expected None or >= 1")


def test_a_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def run_info(cfg: object) -> str:
        require("anymae_no_such_module", "video", purpose="decoding video files")
        return ""

    monkeypatch.setattr("anymae.tasks.commands.info.run_info", run_info)
    assert main(["info"]) == 1
    line = _error_line(capsys, "info")
    assert line.startswith("anymae needs the 'anymae_no_such_module' package for decoding video files; install "
                           "the extra: pip install 'anymae[video]'")


def test_traceback_flag_and_variable_show_the_traceback(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["export", "--checkpoint", str(root / "empty.pt"), "--out", str(root / "e.pth")]
    with pytest.raises(CheckpointError, match="is empty"):
        main([*args, "--traceback"])
    monkeypatch.setenv("ANYMAE_TRACEBACK", "1")
    with pytest.raises(CheckpointError, match="is empty"):
        main(args)


def test_config_changes_on_the_command_line_replace_what_they_contradict(capsys: pytest.CaptureFixture[str]) -> None:
    config = ["pretrain", "--config", str(CONFIGS / "pointmae_tiny_cpu.yaml"), "--print-config"]
    assert main([*config, "data.source=point_files", "data.root=./clouds"]) == 0  # n, num_classes: synthetic only
    out = capsys.readouterr()
    assert yaml.safe_load(out.out)["data"] == {"source": "point_files", "root": "./clouds"}
    assert "dropped its keys data.n, data.num_classes, which point_files does not have" in out.err
    assert main([*config, "optim.blr=1e-3"]) == 0  # the file sets optim.lr
    out = capsys.readouterr()
    optim = yaml.safe_load(out.out)["optim"]
    assert optim["blr"] == 1e-3 and optim["lr"] is None and "optim.blr (override) replaces optim.lr=0.001" in out.err


def test_probe_says_which_optimizer_trained_the_heads(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = ["probe.protocols=[knn,linear]", "probe.epochs=2", "probe.warmup_epochs=1"]
    assert main(["probe", "--checkpoint", str(root / "run" / "last.pt"), *DATA, *settings]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"linear     top-1 +[0-9.]+%  \(final epoch, adamw blr 0.01\)", lines[-1]), lines
    assert re.fullmatch(r"knn        top-1 +[0-9.]+%", lines[-2]), lines
