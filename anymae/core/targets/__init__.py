"""Target providers: what the decoder predicts at each token, when it is not the tokenizer's pixels.

    provider(tokens, inputs, cache, model) -> B×N×P targets in token order

The default target is the tokenizer's own (`Tokens.target`: patch pixels, fbank values, point
coordinates, node features), optionally normalized per token (`core.losses.TokenNorm`, norm_pix);
`MaskedAutoencoder(target=...)` replaces it with a provider (HOG, a teacher's features, discrete
ids, the input features). A provider is an `nn.Module` (it may hold a codebook or a projector and
is saved with the model) with:

- `dim`: P, the size of one token's target (the decoder head's output width; for discrete ids
  the number of classes the head scores, while the returned targets are B×N×1 integer ids);
- `forward(tokens, inputs, cache, model)`: `tokens` the student's tokenized batch, `inputs` the
  modality batch (a teacher tokenizes it itself), `cache` the pass's shared dict (`Pass.cache`:
  a teacher's output computed once per pass is stored there under the teacher's name), `model`
  the model (its teachers: `model.teachers[name]`). Targets never carry gradients.

`reconstruct()` / pictures only apply to pixel targets; a model with another provider says so.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from anymae.core.tokens import Tokens


class TargetProvider(nn.Module):
    """Base class of non-pixel targets (module doc). Subclasses set `dim` and implement `forward`."""

    dim: int
    discrete: bool = False  # True: targets are B×N×1 int64 class ids in [0, dim)

    def forward(self, tokens: Tokens, inputs: Any, cache: dict[str, Any], model: nn.Module) -> Tensor:  # pragma: no cover
        raise NotImplementedError


__all__ = ["TargetProvider"]
