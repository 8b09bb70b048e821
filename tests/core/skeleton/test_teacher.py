"""Teachers: EMA maths and schedule, ownership by the model, the engine's hook, resume, features, attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from anymae.core.encoder import EncoderConfig, TransformerEncoder
from anymae.core.skeleton.teacher import EMATeacher, FrozenTeacher, Momentum, block_attention
from anymae.datasets.seeding import SeededSamples
from anymae.tasks.train.checkpoint import load_checkpoint
from anymae.tasks.train.config import OptimConfig, RunConfig
from anymae.tasks.train.engine import pretrain_objective, train
from anymae.tasks.train.optim import param_groups
from tests.tasks.train._train_script import NoisyPictures, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


class _Student(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.register_buffer("count", torch.zeros(1))


def test_momentum_schedule_constant_and_cosine_by_hand() -> None:
    assert [Momentum(0.99)(it) for it in (0, 7, 10**6)] == [0.99, 0.99, 0.99]
    cos = Momentum(0.9, 1.0, steps=4)
    want = [1.0 - 0.1 * (1 + math.cos(math.pi * it / 4)) / 2 for it in range(4)]  # DINO's cosine_scheduler
    assert [cos(it) for it in range(4)] == pytest.approx(want, abs=1e-15)
    assert cos(0) == pytest.approx(0.9) and cos(2) == pytest.approx(0.95) and cos(4) == cos(99) == 1.0
    with pytest.raises(ValueError, match="steps=0"):
        Momentum(0.9, 1.0)
    with pytest.raises(ValueError, match=r"start=1.5: expected a value in \[0, 1\]"):
        Momentum(1.5)


def test_ema_update_by_hand_for_three_steps_with_a_cosine_schedule() -> None:
    root = nn.Module()
    root.student = _Student()
    with torch.no_grad():
        root.student.lin.weight.copy_(torch.tensor([[1.0, -2.0]]))
        root.student.lin.bias.fill_(0.5)
    teacher = EMATeacher(root, Momentum(0.5, 1.0, steps=4), parts=("student",))
    t_lin = teacher.part("student").lin
    assert torch.equal(t_lin.weight, root.student.lin.weight) and not t_lin.weight.requires_grad
    w_t, b_t = [1.0, -2.0], 0.5
    student_w = [[3.0, 1.0], [-1.0, 4.0], [2.0, 2.0]]
    for step, (w0, w1) in enumerate(student_w, start=1):
        with torch.no_grad():
            root.student.lin.weight.copy_(torch.tensor([[w0, w1]]))
            root.student.lin.bias.fill_(float(step))
            root.student.count.fill_(10.0 * step)
        teacher.after_step(root, step)
        m = 1.0 - 0.5 * (1 + math.cos(math.pi * (step - 1) / 4)) / 2  # 0.5, 0.5732..., 0.75
        w_t = [m * a + (1 - m) * b for a, b in zip(w_t, (w0, w1))]
        b_t = m * b_t + (1 - m) * step
        assert t_lin.weight.tolist()[0] == pytest.approx(w_t, rel=1e-6)
        assert t_lin.bias.item() == pytest.approx(b_t, rel=1e-6)
        assert teacher.part("student").count.item() == 10.0 * step  # buffers copied
    # the numbers worked on paper: m = 0.5, 0.5732..., 0.75
    assert t_lin.weight.tolist()[0] == pytest.approx([1.0397524, 1.5653713], rel=1e-6)
    assert t_lin.bias.item() == pytest.approx(1.7126032, rel=1e-6)
    with pytest.raises(KeyError, match="holds no copy of 'encoder'"):
        teacher.part("encoder")


def _with_teacher(momentum: Momentum = Momentum(0.9, 1.0, steps=6)) -> nn.Module:
    model = tiny_model()
    model.add_teacher("ema", EMATeacher(model, momentum))
    return model


def test_teacher_is_owned_saved_frozen_and_outside_the_optimizer() -> None:
    model = _with_teacher()
    keys = model.state_dict().keys()
    assert "teachers.ema.parts.encoder.blocks.0.attn.qkv.weight" in keys
    assert "teachers.ema.parts.tokenizer.patch_embed.proj.weight" in keys
    student = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("teachers."))
    grouped = sum(p.numel() for g in param_groups(model, 0.05) for p in g["params"])
    assert grouped == student  # the teacher's parameters are in no group (no decay, no update)
    assert all(not p.requires_grad for p in model.teachers.parameters())
    model.train()
    assert model.training and not model.teachers["ema"].training
    with pytest.raises(ValueError, match="already has a teacher named 'ema'"):
        model.add_teacher("ema", FrozenTeacher(model.tokenizer, model.encoder))


def _run(tmp_path, model: nn.Module, *, name: str, max_steps: int, resume: bool = False, accum: int = 1):
    optim = OptimConfig(blr=2e-2, epochs=1, warmup_epochs=0, batch_size=8 // accum, accum_iter=accum)
    run = RunConfig(out_dir=str(tmp_path / name), log_every=1, device="cpu", num_workers=0, tensorboard=False,
                    max_steps=max_steps, resume=resume)  # fmt: skip
    data = SeededSamples(NoisyPictures(32), base_seed=0)
    return train(model, data, pretrain_objective, optim, run, full_config={"note": "teacher"})


def test_engine_calls_the_hook_once_per_optimizer_step_not_per_micro_batch(tmp_path) -> None:
    model = tiny_model()
    calls: list[int] = []
    forwards: list[int] = []
    model.after_step = calls.append  # the engine's one call, counted
    model.register_forward_pre_hook(lambda _m, _args: forwards.append(1))
    _run(tmp_path, model, name="accum", max_steps=3, accum=2)
    assert calls == [1, 2, 3] and len(forwards) == 6


def test_ema_teacher_follows_training_and_resumes_bitwise(tmp_path) -> None:
    start = _with_teacher().state_dict()
    straight = _run(tmp_path, _with_teacher(), name="straight", max_steps=4)
    _run(tmp_path, _with_teacher(), name="split", max_steps=2)
    resumed = _run(tmp_path, _with_teacher(), name="split", max_steps=4, resume=True)
    a, b = load_checkpoint(straight.checkpoint)["model"], load_checkpoint(resumed.checkpoint)["model"]
    teacher_keys = [k for k in a if k.startswith("teachers.")]
    assert teacher_keys and all(torch.equal(a[k], b[k]) for k in teacher_keys)
    key = "teachers.ema.parts.encoder.blocks.0.mlp.fc1.weight"
    assert not torch.equal(a[key], start[key])  # it moved ...
    assert not torch.equal(a[key], a["encoder.blocks.0.mlp.fc1.weight"])  # ... but lags the student


def _tokens_and_plan(model: nn.Module, x: torch.Tensor):
    tokens = model.tokenize(x)
    (planned,) = model.plan_masks(tokens, seeds=torch.arange(x.shape[0]))
    return tokens, planned


def test_teacher_features_at_index_equal_the_students_encoder_on_its_visible_tokens() -> None:
    model = tiny_model().eval()
    teacher = EMATeacher(model, Momentum(0.99))  # an exact copy before any update
    x = torch.randn(3, 3, 16, 16)
    tokens, planned = _tokens_and_plan(model, x)
    with torch.no_grad():
        student = model.encode(tokens, planned, taps=(0,))
    out = teacher(x, index=planned.plan.keep, taps=(0,))
    assert out.latent.shape == (3, 1 + 4, 32)  # cls + 16 × 0.25 visible tokens
    assert torch.equal(out.latent, student.latent) and torch.equal(out.taps[0], student.taps[0])
    full = teacher(x)
    assert torch.equal(full.tokens, model.features(x).tokens)
    gathered = full.tokens.gather(1, planned.plan.keep.unsqueeze(-1).expand(-1, -1, 32))
    assert not torch.allclose(out.tokens, gathered)  # visible-only attention differs from all-token attention


def test_attention_map_equals_a_hand_computation_from_q_and_k() -> None:
    torch.manual_seed(3)
    enc = TransformerEncoder(EncoderConfig(dim=8, depth=2, num_heads=2))
    block = enc.blocks[1]
    x = torch.randn(2, 5, 8)
    w, b = block.attn.qkv.weight, block.attn.qkv.bias
    h = F.layer_norm(x, (8,), block.norm1.weight, block.norm1.bias, eps=1e-6)
    want = torch.empty(2, 2, 5, 5)
    for head in range(2):
        rows_q, rows_k = slice(4 * head, 4 * head + 4), slice(8 + 4 * head, 8 + 4 * head + 4)
        q = h @ w[rows_q].T + b[rows_q]  # 2×5×4
        k = h @ w[rows_k].T + b[rows_k]
        want[:, head] = torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1)  # scale 1/sqrt(4)
    got = block_attention(block, x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.sum(-1), torch.ones(2, 2, 5))


def test_teacher_attention_of_a_chosen_block_heads_kept_or_averaged() -> None:
    model = tiny_model().eval()
    teacher = FrozenTeacher(model.tokenizer, model.encoder)
    x = torch.randn(2, 3, 16, 16)
    blocks: list[torch.Tensor] = []
    model.encoder.blocks[1].register_forward_pre_hook(lambda _m, args: blocks.append(args[0]))
    kept = teacher(x, attention_block=1, heads="all")
    assert kept.attention is not None and kept.attention.shape == (2, 2, 17, 17)  # B×heads×(1+16)×(1+16)
    torch.testing.assert_close(kept.attention, block_attention(model.encoder.blocks[1], blocks[0]))
    torch.testing.assert_close(kept.attention.sum(-1), torch.ones(2, 2, 17))
    assert kept.cls_attention().shape == (2, 2, 16)
    mean = teacher(x, attention_block=1)
    torch.testing.assert_close(mean.attention, kept.attention.mean(1))
    assert mean.cls_attention().shape == (2, 16)
    torch.testing.assert_close(mean.latent, kept.latent)  # asking for attention changes no feature
    with pytest.raises(ValueError, match="attention_block=2: the teacher has blocks 0..1"):
        teacher(x, attention_block=2)
    with pytest.raises(ValueError, match="no attention: pass attention_block"):
        teacher(x).cls_attention()
