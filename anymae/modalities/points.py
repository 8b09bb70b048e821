"""Point clouds: FPS + kNN groups, mini-PointNet tokens, Chamfer targets; Point-MAE / Point-CMAE presets.

Tokenizer (Point-MAE `Group` + `Encoder`): a batch B×N×3 is grouped into G groups of K points
around farthest-point-sampled centers (`points_grouping.group_points`); each centred group goes
through the mini-PointNet (Conv1d 3->128, BN, ReLU, Conv1d 128->256, max-pool, concat with the
per-point features (512), Conv1d 512->512, BN, ReLU, Conv1d 512->D, max-pool) -> one D-wide token.
Positions: a learned MLP on the centers (Linear 3->128, GELU, Linear 128->D), re-added at every
block of encoder and decoder (`pos_every_block`). Tokens.coords = centers B×G×3; target =
B×G×(K·3) centred points (point-major). Decoder head: Linear D -> 3K (the reference's Conv1d
with kernel 1); loss Chamfer-L2 (`core.losses.chamfer_l2`).

Presets: `point_mae` (ShapeNet-55 pretraining: 1024 points, G 64, K 32, 384 wide, 12 blocks,
6 heads, qkv_bias False, drop_path 0.1, decoder 4 blocks / 6 heads, mask 0.6 random) and
`point_cmae` (the same with Point-CMAE's two masks, two decoders and the consistency term), plus
a CPU-sized `point_mae_tiny`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from anymae.core.build import MAEConfig, build_mae, config_dict, decoder_config, resolve_config
from anymae.core.decoders.mae import MAEDecoder
from anymae.core.masking import make_masking
from anymae.core.model import MaskedAutoencoder
from anymae.core.pos_embed import CoordMLP
from anymae.core.registry import register_model
from anymae.core.skeleton import DecoderConsistency
from anymae.core.tokens import Tokens
from anymae.core.transformer import init_mae_, init_trunc_normal_
from anymae.modalities.points_grouping import group_points


class MiniPointNet(nn.Module):
    """Point-MAE's group encoder: B×G×K×3 centred groups -> B×G×D tokens (names as the reference)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Conv1d(128, 256, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Conv1d(512, dim, 1)
        )

    def forward(self, groups: Tensor) -> Tensor:
        b, g, k, _ = groups.shape
        x = rearrange(groups, "b g k c -> (b g) c k")  # (B·G)×3×K
        f = self.first_conv(x)  # (B·G)×256×K
        glob = f.max(dim=2, keepdim=True).values  # (B·G)×256×1
        f = torch.cat([glob.expand(-1, -1, k), f], dim=1)  # (B·G)×512×K
        f = self.second_conv(f).max(dim=2).values  # (B·G)×D
        return rearrange(f, "(b g) d -> b g d", b=b, g=g)


class PointTokenizer(nn.Module):
    """B×N×3 point clouds -> G group tokens (B×G×D), Chamfer targets (B×G×3K), centers as coords.

    Args:
        num_points: N of `example()` batches (any N >= group_size is accepted in forward).
        num_group: G centers.
        group_size: K points per group.
        dim: token width D.
        grouping_backend: "torch" or "pytorch3d" (when installed), see `points_grouping`.
    """

    picture_hidden = "not drawn"  # the masked panel's legend: `picture_fill` leaves hidden groups out

    def __init__(
        self, num_points: int, num_group: int, group_size: int, dim: int, *, grouping_backend: str = "torch"
    ) -> None:
        super().__init__()
        if group_size > num_points or num_group > num_points:
            raise ValueError(f"PointTokenizer: num_points={num_points} must be >= num_group={num_group} and "
                             f">= group_size={group_size}")
        self.num_points, self.num_group, self.group_size, self.dim = num_points, num_group, group_size, dim
        self.grouping_backend = grouping_backend
        self.pointnet = MiniPointNet(dim)
        self.pos_embed = CoordMLP(3, dim)

    def forward(self, points: Tensor) -> Tokens:
        if not isinstance(points, Tensor) or points.ndim != 3 or points.shape[-1] != 3:
            got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
            raise ValueError(f"expected point clouds of shape B×N×3, got {got}")
        with torch.no_grad():
            groups, centers = group_points(
                points.detach().float(), self.num_group, self.group_size, backend=self.grouping_backend
            )  # B×G×K×3, B×G×3
        x = self.pointnet(groups.to(points.dtype))  # B×G×D
        target = rearrange(groups, "b g k c -> b g (k c)")  # B×G×3K
        return Tokens(x=x, target=target, grid=(self.num_group,), coords=centers, extra={"num_points": points.shape[1]})

    def example(self, batch_size: int) -> Tensor:
        """Random clouds on the unit sphere's surface, B×N×3."""
        x = torch.randn(batch_size, self.num_points, 3)
        return x / x.norm(dim=-1, keepdim=True)

    def untokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """B×G×3K centred group points -> B×(G·K)×3 absolute points (centers added back)."""
        assert tokens.coords is not None
        pts = rearrange(values, "b g (k c) -> b g k c", c=3) + tokens.coords.unsqueeze(2)  # B×G×K×3
        return rearrange(pts, "b g k c -> b (g k) c")

    def to_pictures(
        self, batch: Tensor, extent: float = 1.0, elev: float = 20.0, azim: float = -60.0, size: int = 160
    ) -> np.ndarray:
        """Render clouds with matplotlib's Agg 3-D scatter at a fixed view; NaN points are dropped.

        Axes: x to the right, z into the depth, y up (ShapeNet / ModelNet are y-up); limits
        [-extent, extent] on every axis (clouds are normalized to the unit sphere); points are
        coloured by height with a fixed colour scale, so panels of one sample compare directly.

        Args:
            batch: B×N×3 points (NaN rows are not drawn).
            extent: half-width of the plotted cube.
            elev, azim: the camera (degrees).
            size: pixels of each square picture.

        Returns:
            B×size×size×3 uint8.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if not isinstance(batch, Tensor) or batch.ndim != 3 or batch.shape[-1] != 3:
            got = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"to_pictures expects point clouds B×N×3, got {got}")
        clouds = batch.detach().float().cpu().numpy()
        pictures = []
        for cloud in clouds:
            cloud = cloud[np.isfinite(cloud).all(axis=1)]  # N'×3, hidden groups dropped
            fig = Figure(figsize=(size / 100, size / 100), dpi=100)
            canvas = FigureCanvasAgg(fig)
            ax = fig.add_axes((0, 0, 1, 1), projection="3d")
            ax.scatter(cloud[:, 0], cloud[:, 2], cloud[:, 1], c=cloud[:, 1], cmap="viridis", vmin=-extent,
                       vmax=extent, s=2, depthshade=False, linewidths=0)
            for lim in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
                lim(-extent, extent)
            ax.view_init(elev=elev, azim=azim)
            ax.set_axis_off()
            canvas.draw()
            pictures.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        return np.stack(pictures)

    def picture_fill(self, tokens: Tokens, level: float = 0.5, **render: Any) -> Tensor:
        """NaN for every value of a hidden group: `to_pictures` drops those points (`level` unused),
        as Point-MAE's figures show masked clouds; the panel's title says so (`picture_hidden`)."""
        ref = tokens.target if tokens.target is not None else tokens.x
        return torch.full((1, 1, 3 * self.group_size), float("nan"), dtype=ref.dtype, device=ref.device)


@dataclass
class PointMAEConfig(MAEConfig):
    """Point-MAE: MAEConfig plus the grouping, masking and (Point-CMAE) two-mask options."""

    num_points: int = 1024
    num_group: int = 64
    group_size: int = 32
    masking: str = "random_hide"  # Point-MAE `rand`; "nearest_anchor" = its `block`
    two_mask: bool = False  # Point-CMAE
    consistency: Literal["diagonal", "row"] = "diagonal"
    reconstruction_weight: float = 1.0
    consistency_weight: float = 1.0
    grouping_backend: Literal["torch", "pytorch3d"] = "torch"


def _decoder(cfg: PointMAEConfig) -> MAEDecoder:
    dcfg = decoder_config(cfg, **_DECODER_EXTRA, drop_path=cfg.drop_path)
    decoder = MAEDecoder(dcfg, cfg.embed_dim, CoordMLP(3, cfg.decoder_embed_dim), nn.Linear(dcfg.dim, 3 * cfg.group_size))
    decoder.blocks.apply(init_mae_)  # TransformerDecoder._init_weights: xavier Linear, LN (1, 0)
    decoder.norm.apply(init_mae_)
    nn.init.trunc_normal_(decoder.mask_token, std=0.02)
    return decoder


_ENCODER_EXTRA: dict[str, Any] = {"cls_token": False, "pos_every_block": True, "norm_eps": 1e-5}
_DECODER_EXTRA: dict[str, Any] = {"project": False, "keep_prefix": False, "pos_every_block": True, "norm_eps": 1e-5}


def build_point_mae(name: str, **overrides: Any) -> MaskedAutoencoder:
    """Build a registered point-cloud preset with overrides (e.g. num_group=128, two_mask=True)."""
    cfg = resolve_config(POINT_PRESETS[name], overrides, what=f"model {name!r}")
    if cfg.norm_pix_loss:
        raise ValueError(f"model {name!r}: norm_pix_loss does not apply to point groups (Chamfer targets)")
    if cfg.decoder_embed_dim != cfg.embed_dim:
        raise ValueError(f"model {name!r}: Point-MAE's decoder has the encoder's width; got "
                         f"decoder_embed_dim={cfg.decoder_embed_dim} != embed_dim={cfg.embed_dim}")
    tokenizer = PointTokenizer(cfg.num_points, cfg.num_group, cfg.group_size, cfg.embed_dim,
                               grouping_backend=cfg.grouping_backend)
    masking = make_masking(cfg.masking, cfg.mask_ratio)
    mae = build_mae(
        cfg, tokenizer=tokenizer, decoder_pos=CoordMLP(3, cfg.decoder_embed_dim),
        head=nn.Linear(cfg.decoder_embed_dim, 3 * cfg.group_size), masking=masking, config=config_dict(name, cfg),
        encoder_extra=_ENCODER_EXTRA, decoder_extra={**_DECODER_EXTRA, "drop_path": cfg.drop_path},
        loss="chamfer_l2",
    )
    tokenizer.apply(init_trunc_normal_)
    mae.encoder.apply(init_trunc_normal_)
    mae.decoder = _decoder(cfg)  # reference decoder init (the pos MLP and head keep torch's default)
    if not cfg.two_mask:
        return mae
    # Point-CMAE: a second mask draw into a second decoder, and the decoders' consistency term.
    consistency = DecoderConsistency(cfg.consistency, weight=cfg.consistency_weight)
    return MaskedAutoencoder(
        tokenizer, mae.encoder, mae.decoder, masking, extra_decoders=[_decoder(cfg)], terms=[consistency],
        reconstruction_weight=cfg.reconstruction_weight, loss="chamfer_l2", config=config_dict(name, cfg),
    )


_POINT_MAE: dict[str, Any] = {
    "embed_dim": 384, "depth": 12, "num_heads": 6, "qkv_bias": False, "drop_path": 0.1,
    "decoder_embed_dim": 384, "decoder_depth": 4, "decoder_num_heads": 6, "mask_ratio": 0.6,
}

POINT_PRESETS: dict[str, PointMAEConfig] = {
    # Pang-Yatian/Point-MAE cfgs/pretrain.yaml (ShapeNet-55, 1024 points, G64 × K32, rand 0.6).
    "point_mae": PointMAEConfig(**_POINT_MAE),
    # Amazingren/Point-CMAE: Point-MAE's sizes, two masks, two decoders, 1000·rec + consistency.
    "point_cmae": PointMAEConfig(**_POINT_MAE, two_mask=True, reconstruction_weight=1000.0, consistency_weight=1.0),
    # CPU-sized: 256 points, 32 groups of 16, 128 wide (demos and tests).
    "point_mae_tiny": PointMAEConfig(
        num_points=256, num_group=32, group_size=16, embed_dim=128, depth=4, num_heads=4, qkv_bias=False,
        drop_path=0.0, decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4, mask_ratio=0.6,
    ),
}

# The smallest geometry for smoke tests: N = G·K so that a reconstruction has the input's shape.
_SMALL = {"num_points": 64, "num_group": 8, "group_size": 8, "depth": 1, "decoder_depth": 1, "embed_dim": 48,
          "decoder_embed_dim": 48, "num_heads": 2, "decoder_num_heads": 2}

for _name, _cfg in POINT_PRESETS.items():
    register_model(
        _name,
        build_point_mae,
        modality="points",
        summary=f"{'two-mask ' if _cfg.two_mask else ''}point transformer {_cfg.embed_dim}d x{_cfg.depth}, "
        f"G{_cfg.num_group}xK{_cfg.group_size}, {_cfg.num_points} pts",
        small=_SMALL,
    )
