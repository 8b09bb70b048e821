"""BEiT v2: the cls-pretraining branch shares the final norm and LM head (with no extra block and the
branch starting at the last block it predicts exactly what the main head does), 75 of 196 patches are
masked, and pretraining from the CLI reads the tokenizer file once: the checkpoint then holds it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import anymae
from anymae.cli import main
from anymae.core.masking import make_plan
from anymae.core.targets.vq import save_vq_tokenizer
from anymae.datasets.image.synthetic import write_image_folder
from anymae.tasks.train.pretrain import load_pretrained

REPO = Path(__file__).resolve().parents[2]


def test_paper_preset_sizes() -> None:
    with torch.device("meta"):
        m = anymae.create_model("beitv2_vit_base_patch16")
    assert m.target.dim == 8192 and m.target.code_dim == 32 and m.decoder.out_dim == 8192
    assert m.target.codebook.shape == (8192, 32) and m.target.teacher.encoder.depth == 12
    branch = m.terms[1]
    assert branch.taps == (8, 11) and len(branch.blocks) == 2 and branch.shared and branch.head is None
    assert make_plan(m.masking, (14, 14), 1, device="cpu", seeds=torch.tensor([0])).hide.shape[1] == 75


def test_shared_head_branch_equals_the_main_prediction_without_extra_blocks(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = anymae.create_model("beitv2_vit_tiny_patch4", img_size=16, depth=2, early_layers=2, head_layers=0,
                            num_codes=8, tokenizer_depth=1, mask_ratio=0.5, min_block=4)  # fmt: skip
    m.target.load(save_vq_tokenizer(m.target, tmp_path / "tok.pt"))
    out = m(torch.randn(2, 3, 16, 16), seeds=torch.tensor([1, 2]))
    # [cls, last block's patch states] through no block, the encoder's norm and the main head == main branch
    assert torch.allclose(out.parts["cls_pt"], out.parts["rec"], atol=1e-6)
    assert torch.allclose(out.loss, out.parts["rec"] + out.parts["cls_pt"])
    assert not any(k.startswith("terms.1.head") or k.startswith("terms.1.norm") for k in m.state_dict())


def test_cli_pretrains_with_a_tokenizer_file_and_the_checkpoint_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    data = write_image_folder(tmp_path / "images", 4, 2, size=40, fmt="png", seed=0)
    tok = anymae.create_model("beitv2_vit_tiny_patch4").target
    with torch.no_grad():
        tok.codebook.normal_()
    path = save_vq_tokenizer(tok, tmp_path / "tok.pt")
    args = ["pretrain", "--config", str(REPO / "configs" / "beitv2_tiny_cpu.yaml"), f"data.root={data}",
            f"run.out_dir={tmp_path / 'run'}", "run.max_steps=1", "optim.batch_size=4", "run.num_workers=0",
            "run.tensorboard=false", "run.precision=fp32"]  # fmt: skip
    assert main([*args, "model.tokenizer_fallback=none"]) != 0  # no file, no fallback: an error naming the option
    assert "model.tokenizer_file" in capsys.readouterr().err
    assert main([*args, f"model.tokenizer_file={path}"]) == 0
    path.unlink()  # the checkpoint alone rebuilds the model, tokenizer included
    model = load_pretrained(tmp_path / "run" / "last.pt")
    assert torch.equal(model.target.codebook, tok.codebook) and model.target.fitted


def test_without_a_file_the_cpu_config_fits_a_stand_in_codebook(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    torch.set_num_threads(1)
    data = write_image_folder(tmp_path / "images", 4, 2, size=40, fmt="png", seed=0)
    run = tmp_path / "run"
    args = ["pretrain", "--config", str(REPO / "configs" / "beitv2_tiny_cpu.yaml"), f"data.root={data}",
            f"run.out_dir={run}", "run.max_steps=1", "optim.batch_size=4", "run.num_workers=0",
            "run.tensorboard=false", "run.precision=fp32", "model.num_codes=32"]  # fmt: skip
    assert main(args) == 0
    saved = run / "target.tokenizer.pt"  # a complete tokenizer file: it loads into a fresh model
    fresh = anymae.create_model("beitv2_vit_tiny_patch4", num_codes=32).target
    fresh.load(saved)
    model = load_pretrained(run / "last.pt")
    assert torch.equal(model.target.codebook, fresh.codebook)
    assert torch.allclose(fresh.codebook.norm(dim=-1), torch.ones(32), atol=1e-4)  # spherical k-means
    x = torch.randn(4, 3, 32, 32)
    ids = model.target(model.tokenizer(x), x, {}, model)
    assert len(ids.unique()) > 1
