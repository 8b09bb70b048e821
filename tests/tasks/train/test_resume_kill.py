from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from anymae.tasks.train.checkpoint import load_checkpoint
from tests.tasks.train._train_script import main

SCRIPT = Path(__file__).with_name("_train_script.py")
ARGS = ["--drop-path", "0.1", "--ckpt-every", "5"]  # drop-path: the per-step RNG re-seed matters


def _rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(int(r["step"]) >= step for r in _rows(run_dir)):
        if proc.poll() is not None:
            raise AssertionError(f"training exited early with code {proc.returncode}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"step {step} was not logged within {timeout} s")
        time.sleep(0.05)


def test_resume_after_sigkill_continues_exactly(tmp_path):
    threads = torch.get_num_threads()
    killed, ref = tmp_path / "killed", tmp_path / "ref"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    with open(tmp_path / "stderr.txt", "w") as err:
        # hangs inside step 8 (after steps 1-7 were logged and last.pt was written at step 5)
        proc = subprocess.Popen([sys.executable, str(SCRIPT), str(killed), *ARGS, "--hang-at-step", "8"],
                                env=env, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        try:
            main([str(ref), *ARGS])  # the same run, never interrupted (while the child starts up)
            _wait_for_step(proc, killed, 7)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            torch.set_num_threads(threads)
    assert proc.returncode == -signal.SIGKILL
    assert load_checkpoint(killed / "last.pt")["step"] == 5
    try:
        main([str(killed), *ARGS, "--resume"])  # resumes at step 6, crosses into epoch 1, ends at 16
    finally:
        torch.set_num_threads(threads)

    steps = [int(r["step"]) for r in _rows(killed)]
    assert steps == list(range(1, 17))  # 6 and 7 were redone after the kill: their first rows were dropped
    resumed = {int(r["step"]): float(r["loss"]) for r in _rows(killed)}
    uninterrupted = {int(r["step"]): float(r["loss"]) for r in _rows(ref)}
    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, 17))
    for step in uninterrupted:
        assert abs(resumed[step] - uninterrupted[step]) <= 1e-6, step
    final_k, final_r = load_checkpoint(killed / "last.pt"), load_checkpoint(ref / "last.pt")
    assert final_k["step"] == final_r["step"] == 16
    for key, value in final_r["model"].items():
        torch.testing.assert_close(final_k["model"][key], value, rtol=0, atol=1e-6, msg=key)
