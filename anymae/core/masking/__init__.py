"""Masking: one argsort-over-noise primitive (`plan`), and strategies that make the noise.

- `plan`: `MaskPlan`, `plan_from_noise` (the primitive), `SampleRNG` (per-sample seeds),
  `make_plan`, the `MaskingStrategy` protocol and the `MASKINGS` registry (`make_masking`);
- `spatial`: random (MAE / Point-MAE rounding), BEiT blocks, nearest-anchor blocks, grid lines;
- `temporal`: VideoMAE tubes, VideoMAE V2 running cells;
- `channel`: ChA-MAEViT's dynamic channel & patch masking (DCP);
- `scores`: score-driven masks (HPM top-k, Gumbel top-k sampling, AttMask reveal) and loss sets;
- `noise_banks`: ColorMAE's filtered-noise banks; `spatial.CellMasking`: SimMIM's cells;
- `similarity`: LV-MAE's neighbour-similarity masking; `padding`: plans for padded sequences.
- `views`: dependent masks over branches (DMJD's disjoint views, LUT's consecutive keep sets).
"""

from anymae.core.masking.plan import (
    MASKINGS,
    MaskContext,
    MaskDraw,
    MaskingStrategy,
    MaskPlan,
    SampleRNG,
    check_ratio,
    gather_tokens,
    make_masking,
    make_plan,
    plan_from_noise,
    with_loss_set,
)
from anymae.core.masking.spatial import (
    BlockMasking, CellMasking, GridLineMasking, NearestAnchorMasking, RandomMasking,
)
from anymae.core.masking.temporal import RunningCellMasking, TubeMasking
from anymae.core.masking.channel import DynamicChannelPatchMasking
from anymae.core.masking.scores import (
    SCORE_SOURCES, HardTopKMasking, LossSubset, RevealTopMasking, SampledScoreMasking, gumbel_keys,
)
from anymae.core.masking.noise_banks import ColorNoiseMasking, noise_bank
from anymae.core.masking.similarity import SimilarityMasking, neighbour_similarity
from anymae.core.masking.padding import padded_plan, plan_padded
from anymae.core.masking.views import ConsecutiveKeepMasking, DisjointMasking

__all__ = [
    "ConsecutiveKeepMasking", "DisjointMasking",  # dependent masks over branches (`views`)
    "MASKINGS", "SCORE_SOURCES", "BlockMasking", "CellMasking", "ColorNoiseMasking", "DynamicChannelPatchMasking",
    "GridLineMasking", "HardTopKMasking", "LossSubset", "MaskContext", "MaskDraw", "MaskPlan", "MaskingStrategy",
    "NearestAnchorMasking", "RandomMasking", "RevealTopMasking", "RunningCellMasking", "SampleRNG",
    "SampledScoreMasking", "SimilarityMasking", "neighbour_similarity", "padded_plan", "plan_padded", "TubeMasking", "check_ratio", "gather_tokens", "gumbel_keys", "make_masking", "make_plan",
    "noise_bank", "plan_from_noise", "with_loss_set",
]
