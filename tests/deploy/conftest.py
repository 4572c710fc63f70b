"""Fixtures of the C code generation tests: one generated, compiled build per network."""

from __future__ import annotations

import pytest
from deploy_helpers import COMPILER, Builds


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> Builds:
    if COMPILER is None:
        pytest.skip("no C compiler (gcc, cc or clang) on this machine")
    return Builds(tmp_path_factory.mktemp("generated-c"))


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The networks here are tiny: extra torch threads only contend on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
