"""OmniMAE (facebookresearch/omnivore, `omnimae/`): one encoder for images and videos.

Composition (crossmodal_and_zoo.md A2, the released ViT-B config `omnimae_vitbase_ssv2_in1k.yaml`):

- batch: `{"image": B×3×H×W}` or `{"video": B×3×T×H×W}` (ImageNet-normalized), or the bare
  tensor (4-D: images, 5-D: clips); each step draws its whole batch from one source (the data
  side's job; both keys at once also run);
- tokenizers: the video modality's Conv3d tubelet embedding (2×16×16) shared by both modalities;
  an image is repeated to a 2-frame clip first (`ImageAsClip`, PadIm2Video "repeat"), so it gives
  one temporal slot (196 tokens) and a 16-frame clip 8×14×14 = 1568; one fixed 1-D sinusoid over
  the flattened tokens (an image reads its first 196 entries); no modality embedding, no cls;
- masking per modality (`SpanMasking`): images hide int(0.75·N) tokens at random (the released
  config; its tube mask over one slot is a random mask), videos int(0.9·N) at random (not tube);
  the paper's 0.9 / 0.95 with `ratios="paper"`;
- one shared ViT encoder; decoder 384 wide, 4 blocks, 16 heads over the visible and mask tokens
  with the same 1-D sinusoid at decoder width, one head 384 -> 2·16·16·3 shared by both;
- target: [0, 1] pixels of the (repeated) tubelets, normalized per tubelet and colour channel
  (`norm_pix_per_channel`); MSE on hidden tokens, one term per modality (`rec_image`,
  `rec_video`; 0 on steps without that modality).

Deviation: the reference inserts mask tokens and adds the positions at encoder width (768)
before its 768 -> 384 projection; here (the MAE decoder order) the encoder output is projected
first and the mask token and positions live at decoder width: 94.22M parameters either way
(384 fewer here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from anymae.core.build import MAEConfig, config_dict, decoder_config, encoder_config, resolve_config
from anymae.core.encoder import TransformerEncoder
from anymae.core.losses import TokenNorm
from anymae.core.masking import RandomMasking
from anymae.core.model import MaskedAutoencoder
from anymae.core.multimodal import JointDecoder, ModalityLoss, MultiTokenizer, SpanMasking, build_multimodal_mae
from anymae.core.registry import register_model
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_
from anymae.modalities.video import VideoTokenizer, make_video_pos

RATIOS = {"released": (0.75, 0.9), "paper": (0.9, 0.95)}  # (image, video) hidden shares


class ImageAsClip(nn.Module):
    """Images B×C×H×W through a video tokenizer as 2-frame clips made by repetition (PadIm2Video)."""

    def __init__(self, video: VideoTokenizer, frames: int = 2) -> None:
        super().__init__()
        if frames != video.tubelet_size:
            raise ValueError(f"an image repeated to {frames} frames must fill one tubelet of {video.tubelet_size}")
        self.video, self.frames = video, frames
        self.dim, self.pos_embed = video.dim, video.pos_embed

    def forward(self, imgs: Tensor) -> Tokens:
        if imgs.ndim != 4:
            raise ValueError(f"expected images B×C×H×W, got a tensor of shape {tuple(imgs.shape)}")
        return self.video(imgs.unsqueeze(2).expand(-1, -1, self.frames, -1, -1))  # B×C×2×H×W

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        return self.video.untokenize(values, tokens)[:, :, 0]  # B×C×H×W: the first of the equal frames

    def example(self, batch_size: int) -> Tensor:
        return self.video.example(batch_size)[:, :, 0]


def route_by_rank(batch: Tensor) -> dict[str, Tensor]:
    """A bare tensor batch: B×C×H×W is an image batch, B×C×T×H×W a video batch."""
    if not isinstance(batch, Tensor) or batch.ndim not in (4, 5):
        got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
        raise ValueError(f"OmniMAE takes images B×C×H×W, clips B×C×T×H×W or a dict of them, got {got}")
    return {"image" if batch.ndim == 4 else "video": batch}


@dataclass
class OmniMAEConfig(MAEConfig):
    """OmniMAE ViT-B/16 (the released config). `mask_ratio` is unused: the per-modality ratios come
    from `ratios` ("released": image 0.75 / video 0.9; "paper": 0.9 / 0.95) unless
    `image_mask_ratio` / `video_mask_ratio` are given."""

    decoder_embed_dim: int = 384
    decoder_depth: int = 4
    decoder_num_heads: int = 16
    norm_pix_loss: bool = True
    img_size: int | tuple[int, int] = 224
    num_frames: int = 16
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    ratios: str = "released"
    image_mask_ratio: float | None = None
    video_mask_ratio: float | None = None
    modality_drop: dict[str, float] = field(default_factory=dict)


def build_omnimae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered OmniMAE preset with overrides (e.g. `ratios="paper"`)."""
    cfg = resolve_config(OMNIMAE_PRESETS[name], overrides, what=f"model {name!r}")
    if cfg.ratios not in RATIOS:
        raise ValueError(f"model {name!r}: ratios={cfg.ratios!r}: expected one of {sorted(RATIOS)}")
    image_ratio = cfg.image_mask_ratio if cfg.image_mask_ratio is not None else RATIOS[cfg.ratios][0]
    video_ratio = cfg.video_mask_ratio if cfg.video_mask_ratio is not None else RATIOS[cfg.ratios][1]
    video = VideoTokenizer(cfg.img_size, cfg.num_frames, cfg.patch_size, cfg.tubelet_size, cfg.in_chans, cfg.embed_dim)
    tokenizer = MultiTokenizer({"image": ImageAsClip(video, cfg.tubelet_size), "video": video}, route=route_by_rank)
    masking = SpanMasking({"image": RandomMasking(image_ratio, count="hide"),
                           "video": RandomMasking(video_ratio, count="hide")}, drop=cfg.modality_drop)
    encoder = TransformerEncoder(encoder_config(cfg, cls_token=False))
    dec = cfg.decoder_embed_dim
    pos = make_video_pos(video.grid, dec, "flat")
    head = nn.Linear(dec, cfg.tubelet_size * cfg.patch_size**2 * cfg.in_chans)
    decoder = JointDecoder(decoder_config(cfg, keep_prefix=False), cfg.embed_dim, pos={"image": pos, "video": pos},
                           heads={"image": head, "video": head})
    for part in (encoder.blocks, encoder.norm, decoder):
        part.apply(init_mae_)
    norm = TokenNorm(channels=cfg.in_chans, mode="std") if cfg.norm_pix_loss else None
    return build_multimodal_mae(
        tokenizer=tokenizer, encoder=encoder, decoder=decoder, masking=masking,
        losses={m: ModalityLoss("mse", norm=norm) for m in ("image", "video")}, config=config_dict(name, cfg),
    )


OMNIMAE_PRESETS: dict[str, OmniMAEConfig] = {
    "omnimae_vit_base_patch16": OmniMAEConfig(),
    # CPU size: 32×32 images (64 tokens) and 4-frame 32×32 clips (2×8×8 = 128 tokens) at patch 4.
    "omnimae_vit_tiny_patch4": OmniMAEConfig(
        img_size=32, num_frames=4, patch_size=4, embed_dim=128, depth=6, num_heads=4, decoder_embed_dim=64,
        decoder_depth=2, decoder_num_heads=4,
    ),
}

for _name, _cfg in OMNIMAE_PRESETS.items():
    register_model(
        _name, build_omnimae, modality="image+video",
        summary=f"OmniMAE ViT {_cfg.embed_dim}d x{_cfg.depth}, images and {_cfg.num_frames}-frame clips, "
                f"tubelet {_cfg.tubelet_size}x{_cfg.patch_size}",
        small={"img_size": 2 * _cfg.patch_size, "num_frames": 2, "depth": 1, "decoder_depth": 1},
    )
