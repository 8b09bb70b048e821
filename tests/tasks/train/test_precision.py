"""precision="auto": bf16 autocast where the CPU computes bf16 natively (capabilities injected, never timed),
and bf16-autocast training tracks fp32 on a tiny preset."""

from __future__ import annotations

import pytest
import torch

from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.engine import pretrain_objective, train
from anymae.tasks.train.logging import read_metrics
from anymae.tasks.train.steps import CPU_BF16_ENV, choose_precision, cpu_bf16, cpu_flags
from tests.tasks.train._train_script import NoisyPictures, tiny_model

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)
ZEN3 = {"fpu", "sse2", "avx", "avx2", "fma"}  # AVX2 + FMA, no bf16: bf16 is emulated (30x slower measured)
SAPPHIRE_RAPIDS = ZEN3 | {"avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
ZEN4 = ZEN3 | {"avx512f", "avx512_bf16"}


def test_cpu_flags_are_read_from_the_first_flags_or_features_line(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t: fpu\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 sve\n")
    assert cpu_flags(str(x86)) == {"fpu", "avx2", "amx_bf16"}
    assert cpu_flags(str(arm)) == {"fp", "asimd", "bf16", "sve"}
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


def test_native_bf16_is_decided_by_the_cpu_flags_or_the_environment():
    assert cpu_bf16(ZEN3, env={}) == (False, "the CPU has no native bf16 (amx_bf16 / avx512_bf16)")
    assert cpu_bf16(SAPPHIRE_RAPIDS, env={}) == (True, "the CPU has amx_bf16 and avx512_bf16")
    assert cpu_bf16(ZEN4, env={}) == (True, "the CPU has avx512_bf16")
    assert cpu_bf16({"fp", "asimd", "bf16"}, env={}) == (False, "the CPU has no native bf16 (amx_bf16 / avx512_bf16)")
    assert cpu_bf16(ZEN3, env={CPU_BF16_ENV: "1"}) == (True, "ANYMAE_CPU_BF16=1")
    assert cpu_bf16(SAPPHIRE_RAPIDS, env={CPU_BF16_ENV: "0"}) == (False, "ANYMAE_CPU_BF16=0")
    with pytest.raises(ValueError, match=r"^ANYMAE_CPU_BF16='yes': expected 1 \(the CPU computes bf16 natively\) or 0$"):
        cpu_bf16(ZEN3, env={CPU_BF16_ENV: "yes"})


def test_auto_precision_follows_the_device_and_explicit_choices_win(monkeypatch):
    amx, zen3 = cpu_bf16(SAPPHIRE_RAPIDS, env={}), cpu_bf16(ZEN3, env={})
    assert choose_precision("auto", CPU, cpu=amx) == (torch.bfloat16, "auto: the CPU has amx_bf16 and avx512_bf16")
    assert choose_precision("auto", CPU, cpu=zen3) == (None, "auto: the CPU has no native bf16 (amx_bf16 / avx512_bf16)")
    assert choose_precision("fp32", CPU, cpu=amx) == (None, "precision=fp32")
    assert choose_precision("bf16", CPU, cpu=zen3) == (torch.bfloat16, "precision=bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert choose_precision("auto", CUDA, cpu=amx) == (None, "auto: the CUDA device lacks bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert choose_precision("auto", CUDA, cpu=zen3) == (torch.bfloat16, "auto: the CUDA device supports bf16")
    monkeypatch.setenv(CPU_BF16_ENV, "1")  # what the engine asks when nothing is injected
    assert choose_precision("auto", CPU) == (torch.bfloat16, "auto: ANYMAE_CPU_BF16=1")


def _losses(tmp_path, precision: str) -> torch.Tensor:
    out = tmp_path / precision
    run = RunConfig(out_dir=str(out), precision=precision, max_steps=150, log_every=1, device="cpu", num_workers=0,
                    tensorboard=False)  # fmt: skip
    optim = OptimConfig(blr=1e-2, epochs=20, warmup_epochs=1, batch_size=8)
    train(tiny_model(), SeededSamples(NoisyPictures(64), 0), pretrain_objective, optim, run, full_config={})
    return torch.tensor([r["loss"] for r in read_metrics(out / "metrics.csv")])


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("one_thread")
def test_bf16_autocast_losses_track_fp32_over_150_steps(tmp_path, capsys):
    fp32, bf16 = _losses(tmp_path, "fp32"), _losses(tmp_path, "bf16")
    assert "precision: bf16 (precision=bf16)" in capsys.readouterr().err
    assert len(fp32) == len(bf16) == 150
    gap = ((bf16 - fp32).abs() / fp32).max().item()
    assert 0 < gap < 0.01  # stated tolerance: every step's loss within 1% of fp32's (and not identical: bf16 ran)
    for losses in (fp32, bf16):  # both learn: the last 10 steps' mean loss is well below the first 10's
        assert losses[-10:].mean() < 0.75 * losses[:10].mean()
