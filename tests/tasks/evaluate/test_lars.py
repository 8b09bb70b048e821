"""LARS: one and two steps against hand computations, and the ndim <= 1 exemption."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anymae.tasks.evaluate.lars import LARS


def _params() -> tuple[torch.nn.Parameter, torch.nn.Parameter, torch.nn.Parameter]:
    weight = torch.nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))
    bias = torch.nn.Parameter(torch.tensor([0.5, -0.25]))
    scalar = torch.nn.Parameter(torch.tensor(2.0))
    weight.grad = torch.tensor([[0.1, 0.2, -0.3], [0.4, -0.5, 0.6]])
    bias.grad = torch.tensor([1.0, -2.0])
    scalar.grad = torch.tensor(0.5)
    return weight, bias, scalar


def test_one_step_matches_hand_computation() -> None:
    weight, bias, scalar = _params()
    w0, g_w = weight.detach().numpy().copy(), weight.grad.numpy().copy()
    b0, g_b = bias.detach().numpy().copy(), bias.grad.numpy().copy()
    lr, wd, eta = 0.5, 0.1, 0.001
    LARS([weight, bias, scalar], lr=lr, weight_decay=wd, momentum=0.9, trust_coefficient=eta).step()

    update = g_w + wd * w0
    trust = eta * np.linalg.norm(w0) / np.linalg.norm(update)
    np.testing.assert_allclose(weight.detach().numpy(), w0 - lr * trust * update, rtol=1e-6)
    # 1-D and 0-D: plain SGD step, no weight decay, no trust ratio.
    np.testing.assert_allclose(bias.detach().numpy(), b0 - lr * g_b, rtol=1e-6)
    assert float(scalar.detach()) == pytest.approx(2.0 - lr * 0.5)


def test_second_step_uses_momentum_and_fresh_trust_ratio() -> None:
    weight, bias, _ = _params()
    g_w, g_b = weight.grad.clone(), bias.grad.clone()
    lr, wd, eta, momentum = 0.5, 0.1, 0.001, 0.9
    opt = LARS([weight, bias], lr=lr, weight_decay=wd, momentum=momentum, trust_coefficient=eta)
    w0 = weight.detach().clone()
    opt.step()
    w1, b1 = weight.detach().clone(), bias.detach().clone()
    weight.grad, bias.grad = g_w.clone(), g_b.clone()
    opt.step()

    u0 = g_w + wd * w0
    scaled0 = eta * w0.norm() / u0.norm() * u0
    u1 = g_w + wd * w1
    scaled1 = eta * w1.norm() / u1.norm() * u1
    torch.testing.assert_close(weight.detach(), w1 - lr * (momentum * scaled0 + scaled1))
    torch.testing.assert_close(bias.detach(), b1 - lr * (momentum * g_b + g_b))


def test_zero_weight_gets_trust_ratio_one() -> None:
    weight = torch.nn.Parameter(torch.zeros(2, 2))
    weight.grad = torch.ones(2, 2)
    LARS([weight], lr=0.1, weight_decay=0.5).step()
    torch.testing.assert_close(weight.detach(), torch.full((2, 2), -0.1))


def test_param_without_grad_is_untouched_and_bad_values_raise() -> None:
    weight = torch.nn.Parameter(torch.ones(2, 2))
    LARS([weight], lr=0.1).step()
    torch.testing.assert_close(weight.detach(), torch.ones(2, 2))
    with pytest.raises(ValueError, match="momentum"):
        LARS([weight], lr=0.1, momentum=-0.1)
