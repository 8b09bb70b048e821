"""Decoders: what turns the encoder's visible latents into predictions at the queried tokens.

- `mae`: `MAEDecoder` (MAE: project, mask tokens at the queries, positions, self-attention blocks,
  head) and its `DecoderConfig`; `sequence()` builds its input, `predict()` its outputs, and the
  decoders below reuse both;
- `windowed`: windowed (Swin-v2-cr) attention blocks for `MAEDecoder` (Audio-MAE's local decoder);
- `layers`: `LayerDecoder`, decoder blocks that cross-attend to encoder layers, deep -> shallow
  (Hi-End-MAE, HiCMAE);
- `cross_view`: `CrossViewDecoder`, blocks that cross-attend to another view's encoding (CroCo);
- `queries`: `QueryDecoder`, cross-attention-only blocks that materialize only the queried tokens
  (SelectiveMAE);
- `latent_regressor`: CAE's regressor (mask queries cross-attend to the visible latents) and the
  pixel decoder on its predicted latents.

Every cross-attention here is `core.cross_attention.CrossBlock`. The drop mode runs any of them
(`MAEDecoder`, or a decoder declaring `decodes_queries = True` that takes `MAEDecoder`'s call).
"""

from anymae.core.decoders.mae import DecoderConfig, MAEDecoder

__all__ = ["DecoderConfig", "MAEDecoder"]
