"""One modality is the special case: a multi-modal model with only the image tokenizer, the same
weights and the same seeds computes the single-modality MAE's plan, predictions and loss."""

from __future__ import annotations

import pytest
import torch

from anymae.core.losses import TokenNorm
from anymae.core.masking import RandomMasking
from anymae.core.multimodal import JointDecoder, ModalityLoss, MultiTokenizer, SpanMasking, build_multimodal_mae
from anymae.modalities.image import build_image_mae

_SMALL = {"embed_dim": 64, "depth": 2, "num_heads": 4, "decoder_embed_dim": 32, "decoder_depth": 1,
          "decoder_num_heads": 4}


@pytest.mark.parametrize("norm_pix", [False, True])
def test_image_only_multimodal_model_equals_mae(norm_pix: bool) -> None:
    torch.manual_seed(0)
    mae = build_image_mae("mae_vit_tiny_patch4", norm_pix_loss=norm_pix, **_SMALL)
    dec = mae.decoder
    joint = JointDecoder(dec.cfg, 64, pos={"image": dec.pos_embed}, heads={"image": dec.head})
    joint.load_state_dict({k.replace("pos_embed.", "pos.image.").replace("head.", "heads.image."): v
                           for k, v in dec.state_dict().items()})
    multi = build_multimodal_mae(
        tokenizer=MultiTokenizer({"image": mae.tokenizer}), encoder=mae.encoder, decoder=joint,
        masking=SpanMasking({"image": RandomMasking(0.75)}),
        losses={"image": ModalityLoss("mse", norm=TokenNorm() if norm_pix else None)},
    )
    x = torch.randn(3, 3, 32, 32)
    seeds = torch.arange(7, 10)
    one, two = mae(x, seeds=seeds), multi({"image": x}, seeds=seeds)
    assert torch.equal(one.plan.keep, two.plan.keep) and torch.equal(one.mask, two.mask)
    assert torch.allclose(one.pred, two.pred, atol=1e-6)
    assert torch.allclose(one.loss, two.loss, atol=1e-6) and set(two.parts) == {"rec_image"}
    assert torch.allclose(mae.features(x).tokens, multi.features({"image": x}).tokens, atol=1e-6)
    assert torch.allclose(multi.features({"image": x}, modality="image").tokens, mae.features(x).tokens, atol=1e-6)


def test_contrastive_with_a_shared_encoder_reencodes_each_modality_alone() -> None:
    from anymae.core.encoder import EncoderConfig, TransformerEncoder
    from anymae.core.decoders.mae import DecoderConfig
    from anymae.core.multimodal import ModalityContrastive, info_nce
    from anymae.core.pos_embed import FixedSinCos
    from anymae.modalities.image import ImageTokenizer

    torch.manual_seed(0)
    tok = MultiTokenizer({"a": ImageTokenizer(16, 4, 1, 32), "b": ImageTokenizer(16, 4, 3, 32)})
    encoder = TransformerEncoder(EncoderConfig(dim=32, depth=1, num_heads=4, cls_token=False))
    decoder = JointDecoder(DecoderConfig(dim=32, depth=1, num_heads=4), 32,
                           pos={m: FixedSinCos((4, 4), 32) for m in "ab"},
                           heads={"a": torch.nn.Linear(32, 16), "b": torch.nn.Linear(32, 48)})
    model = build_multimodal_mae(
        tokenizer=tok, encoder=encoder, decoder=decoder, masking=SpanMasking({m: RandomMasking(0.5) for m in "ab"}),
        losses={m: ModalityLoss() for m in "ab"},
        terms=[ModalityContrastive("a", "b", temperature=0.1, weight=0.5, bidirectional=True)],
    ).eval()
    batch = {"a": torch.randn(3, 1, 16, 16), "b": torch.randn(3, 3, 16, 16)}
    out = model(batch, seeds=torch.arange(3))
    tokens = tok(batch)
    pooled = []
    for lo, hi in ((0, 16), (16, 32)):
        keep = out.plan.keep
        idx = torch.stack([row[(row >= lo) & (row < hi)] for row in keep])  # B×8 visible tokens of the modality
        x = torch.gather(tokens.x, 1, idx.unsqueeze(-1).expand(-1, -1, 32)) + tok.positions(tokens)[0, idx]
        pooled.append(encoder(x)[0].mean(1))  # the encoder on that modality's visible tokens alone
    assert torch.allclose(out.parts["contrastive"], info_nce(*pooled, 0.1, bidirectional=True), atol=1e-5)
    total = out.parts["rec_a"] + out.parts["rec_b"] + 0.5 * out.parts["contrastive"]
    assert torch.allclose(out.loss, total, atol=1e-6)
