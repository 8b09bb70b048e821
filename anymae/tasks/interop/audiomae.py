"""Import of the official Audio-MAE checkpoints (facebookresearch/AudioMAE), and export back.

Two release formats (`torch.load(path)["model"]`):

- pretrained (`models_mae.MaskedAutoencoderViT`): the MAE names of `interop/mae.py` (patch_embed,
  pos_embed 1×513×D with a zero cls slot, cls_token, blocks, norm, decoder_embed, mask_token,
  decoder_pos_embed, decoder_blocks, decoder_norm, decoder_pred). With the local decoder
  (`decoder_mode=1`) `decoder_blocks.{0..15}` are Swin-v2-cr blocks whose `attn.tau` becomes our
  `attn.logit_scale = -log(tau)` (the same forward, see core/decoders/windowed.py); load them into a model
  built with `decoder="local"`, and a `decoder_mode=0` checkpoint into `decoder="global"`.
- fine-tuned (`models_vit.VisionTransformer`, global pool): patch_embed, cls_token, pos_embed,
  blocks, fc_norm, head; the reference deletes the final `norm`, so `encoder.norm` is set to the
  identity (weight 1, bias 0; a mean-pool Classifier does not use it).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from anymae.core.decoders.windowed import logit_scale_to_tau, tau_to_logit_scale
from anymae.tasks.interop.keys import StateDict
from anymae.tasks.interop.mae import anymae_to_official_mae, official_mae_to_anymae


def official_audiomae_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    """Official Audio-MAE pretrained state dict -> anymae audio MAE state dict (every key mapped)."""
    renamed = {
        (k[: -len("attn.tau")] + "attn.logit_scale" if k.endswith("attn.tau") else k):
        (tau_to_logit_scale(v) if k.endswith("attn.tau") else v)
        for k, v in state.items()
    }  # fmt: skip
    return official_mae_to_anymae(renamed)


def anymae_to_official_audiomae(state: Mapping[str, Tensor]) -> StateDict:
    """The inverse of `official_audiomae_to_anymae` (pretrained format)."""
    out = anymae_to_official_mae(state)
    return {
        (k[: -len("attn.logit_scale")] + "attn.tau" if k.endswith("attn.logit_scale") else k):
        (logit_scale_to_tau(v) if k.endswith("attn.logit_scale") else v)
        for k, v in out.items()
    }  # fmt: skip


def official_audiomae_finetuned_to_classifier(state: Mapping[str, Tensor]) -> StateDict:
    """Official Audio-MAE fine-tuned state dict -> anymae `Classifier` (pool="mean") state dict."""
    head = {k: v for k, v in state.items() if k.startswith(("fc_norm.", "head."))}
    if set(head) != {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}:
        raise KeyError(
            f"official Audio-MAE fine-tuned checkpoint: expected fc_norm.* and head.* (global pool), got {sorted(head)}"
        )
    body = official_mae_to_anymae({k: v for k, v in state.items() if k not in head})
    dim = state["cls_token"].shape[-1]
    body.setdefault("encoder.norm.weight", torch.ones(dim))
    body.setdefault("encoder.norm.bias", torch.zeros(dim))
    return {**body, **head}


def is_audiomae_finetuned(state: Mapping[str, Tensor]) -> bool:
    """Whether `state` is the fine-tuned release (it holds the classifier's `fc_norm.*` / `head.*`)."""
    return any(k.startswith(("fc_norm.", "head.")) for k in state)


def audiomae_release_to_anymae(state: Mapping[str, Tensor]) -> StateDict:
    """An official Audio-MAE state dict, pretrained (-> MAE) or fine-tuned (-> Classifier), -> anymae names."""
    if is_audiomae_finetuned(state):
        return official_audiomae_finetuned_to_classifier(state)
    return official_audiomae_to_anymae(state)
