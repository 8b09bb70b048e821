"""ColorMAE: generated filtered-noise banks (measured spectra), crops and flips, kept counts, presets, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymae
from anymae.cli import main
from anymae.core.masking import ColorNoiseMasking, SampleRNG, make_masking, make_plan, noise_bank
from anymae.core.masking.noise_banks import radial_frequency
from anymae.datasets.image.synthetic import write_image_folder

REPO = Path(__file__).resolve().parents[2]


def _band_power(maps: torch.Tensor) -> dict[str, float]:
    """Mean spectral power per band of count×S×S maps, relative to white noise's (1 = white)."""
    f = radial_frequency(maps.shape[-1])
    power = (torch.fft.fft2(maps.double()).abs() ** 2).mean(0)  # S×S
    white = maps.shape[-1] ** 2  # E|fft2(white)|² per bin for unit-variance white noise
    bands = {"low": f < 0.06, "mid": (f > 0.12) & (f < 0.2), "high": f > 0.35}
    return {name: float(power[b].mean()) / white for name, b in bands.items()}


def test_generated_banks_have_the_colours_spectra() -> None:
    """Red = low-pass, blue = high-pass, green = band-pass, purple = band-stop (measured)."""
    red, blue, green, purple = (_band_power(noise_bank(c, 8, 64)) for c in ("red", "blue", "green", "purple"))
    assert red["low"] > 0.8 and red["high"] < 0.01
    assert blue["low"] < 0.01 and blue["high"] > 0.85
    assert green["mid"] > 10 * green["low"] and green["mid"] > 10 * green["high"] and green["mid"] > 0.15
    assert purple["low"] > 0.7 and purple["high"] > 0.85 and purple["mid"] < 0.4
    white = _band_power(torch.randn(8, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert all(0.8 < v < 1.2 for v in white.values()), white  # the yardstick: white is flat


def test_bank_is_a_pure_function_of_its_settings_and_names_bad_colours() -> None:
    assert torch.equal(noise_bank("green", 2, 16, seed=3), noise_bank("green", 2, 16, seed=3))
    assert not torch.equal(noise_bank("green", 2, 16, seed=3), noise_bank("green", 2, 16, seed=4))
    with pytest.raises(ValueError, match=r"ColorMAE colour 'pink' is not one of \['red', 'blue', 'green', 'purple'\]"):
        make_masking("filtered_noise", 0.75, color="pink")


def test_keeps_the_largest_values_of_a_per_sample_crop() -> None:
    strategy = make_masking("filtered_noise", 0.75, color="green", bank_count=4, bank_size=32)
    assert isinstance(strategy, ColorNoiseMasking)
    seeds = torch.arange(6)
    plan = make_plan(strategy, (14, 14), 6, device="cpu", seeds=seeds)
    assert plan.keep.shape == (6, 49) and plan.hide.shape == (6, 147)  # int(196 · 0.25) kept
    crops = strategy.crops((14, 14), SampleRNG(6, seeds=seeds)).flatten(1)  # B×196
    for row in range(6):
        assert set(plan.keep[row].tolist()) == set(torch.topk(crops[row], 49).indices.tolist())
    # a sample's crop depends only on its seed, and is a flipped window of one bank map
    again = strategy.crops((14, 14), SampleRNG(2, seeds=seeds[[3, 0]]))
    assert torch.equal(again[0].flatten(), crops[3])
    bank = strategy.bank(14)
    windows = bank.unfold(1, 14, 1).unfold(2, 14, 1).reshape(-1, 14, 14)  # every 14×14 window
    flips = [crops[0].view(14, 14).flip(*d) if d else crops[0].view(14, 14) for d in ((), (0,), (1,), (0, 1))]
    assert any(torch.equal(w, f) for w in windows for f in flips)
    assert len({tuple(sorted(r.tolist())) for r in plan.keep}) == 6  # different samples, different masks


def test_presets_match_mae_parameter_counts() -> None:
    with torch.device("meta"):
        color = anymae.create_model("colormae_vit_base_patch16")
    trainable = sum(p.numel() for p in color.parameters() if p.requires_grad)
    assert trainable == 85_647_360 + 26_008_320  # 111.66M: MAE ViT-B (algorithms.md §0, §7d)
    assert isinstance(color.masking, ColorNoiseMasking) and color.masking.color == "green"
    assert color.masking.ratio == 0.75 and color.target_norm is not None


@pytest.mark.timeout(300)
def test_tiny_config_pretrains_from_the_cli(tmp_path: Path) -> None:
    images = write_image_folder(tmp_path / "images", 4, 2, size=40, fmt="png", seed=0)
    argv = ["pretrain", "--config", str(REPO / "configs/colormae_tiny_cpu.yaml"), f"data.root={images}",
            "run.max_steps=2", "optim.batch_size=4", "run.num_workers=0", f"run.out_dir={tmp_path / 'run'}"]
    assert main(argv) == 0
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 2 and ckpt["config"]["model"]["masking_params"] == {"color": "green"}
