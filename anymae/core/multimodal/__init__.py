"""Several modalities in one model, on the one skeleton (CAV-MAE, OmniMAE, MultiMAE).

- `tokenizer`: `MultiTokenizer` (modality tokenizers side by side; named spans over one sequence;
  optional modality embeddings), `ModalityBatch` (the dict batch);
- `masking`: `SpanMasking` (per-modality strategies), `DirichletBudget` (MultiMAE's shared
  budget), whole-modality masking on both, `StripeMasking` (CAV-MAE's audio stripes, "stripes");
- `encoder`: `MultiEncoder` (modality blocks, then joint blocks; per-stream norms for
  modality-only passes);
- `decoders`: `JointDecoder` (one decoder, per-modality positions / embeddings / heads),
  `OutputAdapters` (MultiMAE's cross-attention adapters); `mode.SpanDropMode` runs them;
- `terms`: `SpanReconstruction` (one per modality), `ModalityContrastive` (InfoNCE), `info_nce`;
- `features`: one modality's features (`MaskedAutoencoder.features(x, modality=...)`);
- `build`: `build_multimodal_mae`, `ModalityLoss`.
"""

from anymae.core.multimodal.build import ModalityLoss, build_multimodal_mae
from anymae.core.multimodal.decoders import JointDecoder, OutputAdapter, OutputAdapters
from anymae.core.multimodal.encoder import MultiEncoder, split_spans
from anymae.core.multimodal.features import modality_features
from anymae.core.multimodal.masking import DirichletBudget, SpanMasking, StripeMasking
from anymae.core.multimodal.mode import SpanDropMode
from anymae.core.multimodal.terms import ModalityContrastive, SpanReconstruction, info_nce, modality_pooled
from anymae.core.multimodal.tokenizer import ModalityBatch, MultiTokenizer, span_ids

__all__ = [
    "DirichletBudget", "JointDecoder", "ModalityBatch", "ModalityContrastive", "ModalityLoss", "MultiEncoder",
    "MultiTokenizer", "OutputAdapter", "OutputAdapters", "SpanDropMode", "SpanMasking", "SpanReconstruction",
    "StripeMasking", "build_multimodal_mae", "info_nce", "modality_features", "modality_pooled", "span_ids",
    "split_spans",
]
