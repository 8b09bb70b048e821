"""Learned pooling of encoder tokens for downstream heads."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn


class HybridTokenFusion(nn.Module):
    """ChA-MAEViT's "hybrid token fusion" pooling: the cls token fused with an attention pool.

    One learned query attends over the patch tokens through a Set-Transformer MAB exactly as the
    reference's `MAB(ln=False)`: Q = fc_q(query), K = fc_k(X), V = fc_v(X); heads are split
    along the width and stacked along the token axis, so each head's query attends over the
    keys of all heads, scaled by 1/sqrt(D) (not the head width); O = Q + A·V, then
    O + relu(fc_o(O)). Output: `cls + O` ("cls_attn_pooling") or `cls * sigmoid(O)`
    (`gate=True`, "cls_attn_pooling_sigmoid"). Linear layers trunc-normal(0.02), zero bias.

    Args:
        dim: D.
        num_heads: heads of the MAB (the encoder's).
        gate: the sigmoid variant.
    """

    def __init__(self, dim: int, num_heads: int, *, gate: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"HybridTokenFusion: width {dim} is not divisible by {num_heads} heads")
        self.num_heads, self.gate = num_heads, gate
        self.query = nn.Parameter(torch.zeros(1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.fc_q, self.fc_k, self.fc_v, self.fc_o = (nn.Linear(dim, dim) for _ in range(4))
        for fc in (self.fc_q, self.fc_k, self.fc_v, self.fc_o):
            nn.init.trunc_normal_(fc.weight, std=0.02)
            nn.init.zeros_(fc.bias)

    def forward(self, cls: Tensor, tokens: Tensor) -> Tensor:
        """cls: B×D, tokens: B×N×D (patch tokens, memory tokens excluded) -> B×D."""
        h, d = self.num_heads, cls.shape[-1]
        q = self.fc_q(self.query).expand(cls.shape[0], -1, -1)  # B×1×D
        q_ = rearrange(q, "b t (h e) -> b (h t) e", h=h)  # B×h×e
        k_ = rearrange(self.fc_k(tokens), "b n (h e) -> b (h n) e", h=h)  # B×hN×e
        v_ = rearrange(self.fc_v(tokens), "b n (h e) -> b (h n) e", h=h)
        attn = torch.softmax(q_ @ k_.transpose(1, 2) / d**0.5, dim=2)  # B×h×hN
        o = rearrange(q_ + attn @ v_, "b (h t) e -> b t (h e)", h=h)[:, 0]  # B×D
        o = o + torch.relu(self.fc_o(o))
        return cls * torch.sigmoid(o) if self.gate else cls + o
