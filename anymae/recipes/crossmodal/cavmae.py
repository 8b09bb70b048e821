"""CAV-MAE (YuanGongND/cav-mae, ICLR'23): audio-visual MAE with a contrastive term.

Composition (algorithms.md §7f, crossmodal_and_zoo.md A4, checked against `src/models/cav_mae.py`):

- batch `{"audio": B×1×T×F Kaldi fbank (1024×128, normalized (x + 5.081) / 4.4849 by the data),
  "video": B×3×224×224 one ImageNet-normalized frame}`;
- tokenizers: the audio modality's (patch 16 -> 64×8 = 512 tokens) and the image modality's
  (patch 16 -> 196 tokens), fixed 2-D sin-cos each, plus a learned modality embedding each;
- masking: each modality on its own (`SpanMasking`), 0.75 each: audio `unstructured` (random,
  the default) or CAV-MAE's `time` / `freq` / `tf` stripes (`mask_mode`), video random;
- encoder `MultiEncoder`: 11 blocks per modality, then 1 joint block over [audio visible | video
  visible] with separate LayerNorms per stream (norm1/norm2 of the joint pass, the audio pass,
  the video pass) and final norms norm (joint), norm_a, norm_v;
- decoder `JointDecoder`: 512 wide, 8 blocks, 16 heads, one mask token, per-modality fixed
  sin-cos decoder positions and learned decoder modality embeddings, heads 512 -> 256 (audio)
  and 512 -> 768 (video);
- loss: `rec_audio + rec_video` (norm_pix MSE on each modality's hidden tokens, summed) +
  0.01 · `contrastive` (InfoNCE, τ 0.05, single direction, on the mean of each modality's
  visible tokens after its modality-only pass through the joint block).

Deviations: audio tokens are in the audio modality's time-major order (grid 64×8, positions on
that grid) where the reference transposes the fbank to frequency-major (8×64): the same
tokens, another order (only weight import would care). The reference's blocks all carry four
extra LayerNorms (norm1_a, norm1_v, norm2_a, norm2_v) that only the joint block uses; here only
the joint block has them, so the trainable count is 189.96M where the reference counts 190.13M
(30 blocks × 4 unused LayerNorms = 0.17M). The reference draws its stripes with Python's
unseeded `random`; here they come from the per-sample seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from anymae.core.build import MAEConfig, config_dict, decoder_config, encoder_config, resolve_config
from anymae.core.losses import TokenNorm
from anymae.core.masking import RandomMasking
from anymae.core.model import MaskedAutoencoder
from anymae.core.multimodal import (
    JointDecoder, ModalityContrastive, ModalityLoss, MultiEncoder, MultiTokenizer, SpanMasking, StripeMasking,
    build_multimodal_mae,
)
from anymae.core.pos_embed import FixedSinCos
from anymae.core.registry import register_model
from anymae.core.transformer import init_mae_
from anymae.modalities.audio import AudioTokenizer
from anymae.modalities.image import ImageTokenizer

MODALITIES = ("audio", "video")


@dataclass
class CAVMAEConfig(MAEConfig):
    """CAV-MAE base (the reference's CAVMAE defaults and pretraining script).

    Fields beyond `MAEConfig` (`mask_ratio` is the video ratio; `depth` counts all 12 layers):
        target_length, num_mel_bins, audio_patch_size: the fbank geometry.
        img_size, patch_size, in_chans: the frame geometry.
        modality_depth: modality-specific blocks before the joint ones (11).
        audio_mask_ratio: the audio ratio.
        mask_mode: audio masks: "unstructured", "time", "freq" or "tf".
        mae_loss_weight: weight of each modality's reconstruction (1).
        contrastive_weight, temperature, bidirectional: the InfoNCE term (0.01, 0.05, single direction).
        modality_drop: whole-modality masking: modality -> probability (none by default).
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    target_length: int = 1024
    num_mel_bins: int = 128
    audio_patch_size: int = 16
    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    modality_depth: int = 11
    audio_mask_ratio: float = 0.75
    mask_mode: str = "unstructured"
    mae_loss_weight: float = 1.0
    contrastive_weight: float = 0.01
    temperature: float = 0.05
    bidirectional: bool = False
    modality_drop: dict[str, float] = field(default_factory=dict)


def build_cavmae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered CAV-MAE preset with overrides (e.g. `mask_mode="time"`)."""
    cfg = resolve_config(CAVMAE_PRESETS[name], overrides, what=f"model {name!r}")
    d = cfg.embed_dim
    audio = AudioTokenizer(cfg.target_length, cfg.num_mel_bins, cfg.audio_patch_size, d)
    video = ImageTokenizer(cfg.img_size, cfg.patch_size, cfg.in_chans, d)
    tokenizer = MultiTokenizer({"audio": audio, "video": video}, modality_embed=True)
    if cfg.mask_mode == "unstructured":
        audio_masking: Any = RandomMasking(cfg.audio_mask_ratio)
    else:
        audio_masking = StripeMasking(cfg.audio_mask_ratio, mode=cfg.mask_mode, time_axis=0)  # type: ignore[arg-type]
    masking = SpanMasking({"audio": audio_masking, "video": RandomMasking(cfg.mask_ratio)}, drop=cfg.modality_drop)
    encoder = MultiEncoder(encoder_config(cfg, cls_token=False), MODALITIES, cfg.modality_depth)
    dec = cfg.decoder_embed_dim
    decoder = JointDecoder(
        decoder_config(cfg, keep_prefix=False), d,
        pos={"audio": FixedSinCos(audio.grid, dec), "video": FixedSinCos(video.grid, dec)},
        heads={"audio": nn.Linear(dec, cfg.audio_patch_size**2),
               "video": nn.Linear(dec, cfg.patch_size**2 * cfg.in_chans)},
        modality_embed=True,
    )
    for part in (encoder.blocks, encoder.norm, encoder.modality_blocks, encoder.stream_norms, encoder.modality_norms,
                 decoder):
        part.apply(init_mae_)
    norm = TokenNorm() if cfg.norm_pix_loss else None
    losses = {m: ModalityLoss("mse", norm=norm, weight=cfg.mae_loss_weight) for m in MODALITIES}
    terms = []
    if cfg.contrastive_weight:
        terms.append(ModalityContrastive("audio", "video", temperature=cfg.temperature, weight=cfg.contrastive_weight,
                                         bidirectional=cfg.bidirectional, tap=cfg.modality_depth - 1))
    return build_multimodal_mae(tokenizer=tokenizer, encoder=encoder, decoder=decoder, masking=masking, losses=losses,
                                terms=terms, config=config_dict(name, cfg))


CAVMAE_PRESETS: dict[str, CAVMAEConfig] = {
    "cavmae_base": CAVMAEConfig(),
    # CPU size: 1.28-s fbank of 64 mel bins (8×4 audio tokens at patch 16) + a 32×32 frame at patch 4
    # (64 tokens); 5 + 1 blocks of 128, decoder 64 wide, 2 blocks.
    "cavmae_tiny": CAVMAEConfig(
        target_length=128, num_mel_bins=64, img_size=32, patch_size=4, embed_dim=128, depth=6, modality_depth=5,
        num_heads=4, decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4,
    ),
}

for _name, _cfg in CAVMAE_PRESETS.items():
    register_model(
        _name, build_cavmae, modality="audio-visual",
        summary=f"CAV-MAE {_cfg.embed_dim}d {_cfg.modality_depth}+{_cfg.depth - _cfg.modality_depth} blocks, "
                f"{_cfg.target_length}x{_cfg.num_mel_bins} fbank + {_cfg.img_size}px frame",
        small={"target_length": 32, "num_mel_bins": 32, "img_size": 2 * _cfg.patch_size, "depth": 2,
               "modality_depth": 1, "decoder_depth": 1},
    )
