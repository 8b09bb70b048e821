"""Masking: one argsort-over-noise primitive (`plan`), and strategies that make the noise.

- `plan`: `MaskPlan`, `plan_from_noise` (the primitive), `SampleRNG` (per-sample seeds),
  `make_plan`, the `MaskingStrategy` protocol and the `MASKINGS` registry (`make_masking`);
- `spatial`: random (MAE / Point-MAE rounding), BEiT blocks, nearest-anchor blocks, grid lines;
- `temporal`: VideoMAE tubes, VideoMAE V2 running cells;
- `channel`: ChA-MAEViT's dynamic channel & patch masking (DCP).
"""

from anymae.core.masking.plan import (
    MASKINGS,
    MaskingStrategy,
    MaskPlan,
    SampleRNG,
    check_ratio,
    gather_tokens,
    make_masking,
    make_plan,
    plan_from_noise,
)
from anymae.core.masking.spatial import BlockMasking, GridLineMasking, NearestAnchorMasking, RandomMasking
from anymae.core.masking.temporal import RunningCellMasking, TubeMasking
from anymae.core.masking.channel import DynamicChannelPatchMasking

__all__ = [
    "MASKINGS", "BlockMasking", "DynamicChannelPatchMasking", "GridLineMasking", "MaskPlan", "MaskingStrategy",
    "NearestAnchorMasking", "RandomMasking", "RunningCellMasking", "SampleRNG", "TubeMasking", "check_ratio",
    "gather_tokens", "make_masking", "make_plan", "plan_from_noise",
]
