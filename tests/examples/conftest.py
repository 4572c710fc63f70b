"""Shared fixtures of the example smoke tests: load an example file as a module and call its
``main(argv)``, and run small networks on one thread."""

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Small networks on a shared CPU: one thread avoids threads waiting for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_example(monkeypatch) -> Callable[..., dict]:
    """``run_example("simulate/virtual_sensor.py", "--epochs", "2")`` runs the example's main.

    The example's folder is put first on ``sys.path``, as ``python examples/NAME.py`` does.
    """

    def run(relative: str, *argv: str) -> dict:
        path = EXAMPLES / relative
        monkeypatch.syspath_prepend(str(path.parent))
        name = "example_" + "_".join(Path(relative).with_suffix("").parts)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main(list(argv))

    return run
