"""Sharded training (``strategy="fsdp"``): FSDP2 (``torch.distributed.fsdp.fully_shard``).

The wrap plan (which modules become their own FSDP unit, gathered just before their forward
and freed after it) is chosen from the network:

- a :class:`~deeptoolbox.Network`: every layer of its graph that holds at least 1% of the
  network's parameters (norms, biases-only and other tiny layers stay in the root unit);
- another ``torch.nn.Module``: the repeated blocks, i.e. the children of ``Sequential`` /
  ``ModuleList`` containers whose class occurs at least twice there (transformer blocks,
  ResNet blocks), with the same 1% floor; without any, its top-level children.

The root unit (the module the loss reads) shards whatever is left, so every parameter is
sharded. Mixed precision follows ``precision``: parameters are gathered in bf16 / fp16 and
gradients reduced in fp32.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch

from deeptoolbox.network._network import Network

__all__ = ["wrap_plan", "shard", "precision_policy", "local_fraction", "FullNetwork"]

_CONTAINERS = (torch.nn.Sequential, torch.nn.ModuleList)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _repeated_blocks(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    chosen: list[tuple[str, torch.nn.Module]] = []
    for name, module in net.named_modules():
        if not isinstance(module, _CONTAINERS):
            continue
        if any(name.startswith(f"{c}.") for c, _ in chosen):
            continue
        kids = list(module.named_children())
        kinds = Counter(type(kid) for _, kid in kids)
        for child, kid in kids:
            if kinds[type(kid)] >= 2 and _count(kid):
                chosen.append((f"{name}.{child}" if name else child, kid))
    return chosen


def wrap_plan(net: torch.nn.Module, min_fraction: float = 0.01) -> list[str]:
    """The submodules (by name) that become their own FSDP unit, in order.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(2)])
        >>> wrap_plan(net)
        ['layers.dense_1', 'layers.dense_2']
        >>> wrap_plan(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(),
        ...                               torch.nn.Linear(8, 8), torch.nn.LayerNorm(8)))
        ['0', '2']
    """
    total = _count(net)
    if isinstance(net, Network):
        candidates = [(f"layers.{n}", net.layer(n)) for n in net.layer_names]
    else:
        candidates = _repeated_blocks(net) or list(net.named_children())
    floor = max(1.0, min_fraction * total)
    return [name for name, module in candidates if floor <= _count(module) < total]


def precision_policy(precision: str) -> Any:
    """The FSDP2 MixedPrecisionPolicy for a train() precision ('32', 'bf16-mixed', '16-mixed').

    Example:
        >>> precision_policy("bf16-mixed").param_dtype
        torch.bfloat16
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy

    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    if dtype is None:
        return MixedPrecisionPolicy()
    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def shard(root: torch.nn.Module, net: torch.nn.Module, precision: str) -> list[str]:
    """Apply ``fully_shard`` to the plan's units of ``net``, then to ``root`` (the module the
    loss calls: ``net`` or its logits wrapper). Returns the plan."""
    from torch.distributed.fsdp import fully_shard

    plan = wrap_plan(net)
    policy = precision_policy(precision)
    for name in plan:
        fully_shard(net.get_submodule(name), mp_policy=policy)
    fully_shard(root, mp_policy=policy)
    return plan


def local_fraction(net: torch.nn.Module) -> float:
    """The fraction of the parameters this process holds (1.0 unsharded).

    Example:
        >>> local_fraction(torch.nn.Linear(3, 2))
        1.0
    """
    from torch.distributed.tensor import DTensor

    held = total = 0
    for p in net.parameters():
        total += p.numel()
        held += p.to_local().numel() if isinstance(p, DTensor) else p.numel()
    return held / max(total, 1)


def local_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``net.state_dict()`` with every sharded tensor as this process's shard (a view)."""
    from torch.distributed.tensor import DTensor

    return {k: v.to_local() if isinstance(v, DTensor) else v for k, v in net.state_dict().items()}


class FullNetwork:
    """An unsharded copy of the network kept on the meta device (no memory) while training,
    filled with the gathered full weights at the end."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.template = copy.deepcopy(net)
        persistent = set(self.template.state_dict())
        self.extra = {
            k: b.detach().clone() for k, b in self.template.named_buffers() if k not in persistent
        }
        self.template.to("meta")

    def build(self, net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The full network with ``net``'s (sharded) weights: a collective, on every process."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True))
        plain = self.template.to_empty(device=device)
        plain.load_state_dict({k: v.to(device) for k, v in full.items()})
        for name, value in self.extra.items():
            owner, _, leaf = name.rpartition(".")
            module = plain.get_submodule(owner) if owner else plain
            setattr(module, leaf, value.to(device))
        return plain


# -- sharded checkpoints (torch.distributed.checkpoint) --------------------------------------
def is_sharded_checkpoint(path: Any) -> bool:
    """True for a folder written by :func:`save_sharded` (DCP's ``.metadata`` inside)."""
    from pathlib import Path

    return (Path(path) / ".metadata").is_file()


@contextlib.contextmanager
def _single_process_quietly() -> Iterator[None]:
    """DCP warns that it assumes one process when there is no process group: intended here."""
    import torch.distributed as dist

    with warnings.catch_warnings():
        if not (dist.is_available() and dist.is_initialized()):
            warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        yield


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def save_sharded(
    folder: Any,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loop: dict[str, Any],
    training: dict[str, Any],
    best: dict[str, torch.Tensor] | None,
    is_main: bool,
) -> Any:
    """Write a sharded checkpoint folder (every process writes its shards; a collective).

    ``checkpoint-epochNNNN-iterationNNNNNNN/`` holds DCP's ``.metadata`` and ``*.distcp``
    (model, optimizer and best weights, sharded) and ``state.pt`` (loop state, scaler,
    options: written by process 0), and ``network.json`` for a Network. It is written under
    a ``.partial`` name and renamed when complete. Returns its path.
    """
    import shutil
    from pathlib import Path

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    from deeptoolbox.training._checkpoint import FORMAT_VERSION, checkpoint_name

    folder = Path(folder)
    shown = loop["epoch"] + (1 if loop["position"] else 0)
    final = folder / checkpoint_name(shown, loop["iteration"]).removesuffix(".zip")
    partial = final.with_name(final.name + ".partial")
    if is_main:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    _barrier()
    model, optim = get_state_dict(net, optimizer)
    state: dict[str, Any] = {"model": model, "optimizer": optim}
    if best is not None:
        state["best"] = best
    with _single_process_quietly():
        dcp.save(state, checkpoint_id=str(partial))
    if is_main:
        torch.save({"format_version": FORMAT_VERSION, "loop": loop, "sharded": True,
                    "has_best": best is not None, **training}, partial / "state.pt")  # fmt: skip
        if isinstance(net, Network):
            (partial / "network.json").write_text(net.to_json())
        shutil.rmtree(final, ignore_errors=True)
        partial.rename(final)
    _barrier()
    return final


def load_sharded(path: Any, net: torch.nn.Module, optimizer: torch.optim.Optimizer):
    """Load a sharded checkpoint folder into ``net`` and ``optimizer`` as they are sharded
    now (any number of processes, or none); returns ``state.pt``'s dict with ``best``."""
    from pathlib import Path

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = Path(path)
    saved = torch.load(path / "state.pt", weights_only=True)
    model, optim = get_state_dict(net, optimizer)
    state: dict[str, Any] = {"model": model, "optimizer": optim}
    if saved.get("has_best"):
        state["best"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
    with _single_process_quietly():
        dcp.load(state, checkpoint_id=str(path))
    set_state_dict(net, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])  # fmt: skip
    saved["best"] = state.get("best")
    saved["path"] = path
    return saved
