"""Shared test fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

# precision "auto" computes in fp32 in the tests on every CPU (also in the processes they start), so
# that exact comparisons hold on a CPU with native bf16 too; tests of the bf16 choice inject it.
os.environ["ANYMAE_CPU_BF16"] = "0"


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One intra-op thread: reproducible reduction order, and no spinning threads on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
