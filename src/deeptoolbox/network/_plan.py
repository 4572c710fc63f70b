"""The execution plan of a Network: its layers in order, with numbered value slots."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import torch
import torch.fx
from torch import nn

from deeptoolbox.layers._input import InputLayer

Step = tuple[nn.Module, tuple[int, ...], int, tuple[int, ...]]
"""(layer, slots of its inputs, slot of its output, slots free once it has run)."""

tracing = torch._C._get_tracing_state
_COMPILED = "_compiled_call_impl"  # set on a module by nn.Module.compile()


def symbolic() -> bool:
    """True while sizes may be symbolic (torch.jit.trace, torch.compile, torch.export), when
    comparing them with the sizes a network last accepted would pin them to constants."""
    return bool(tracing()) or torch.compiler.is_compiling()


def _global_hook_dicts() -> list[dict] | None:
    from torch.nn.modules import module as implementation

    names = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks")
    names += ("_global_backward_pre_hooks",)
    found = [getattr(implementation, name, None) for name in names]
    return found if all(isinstance(d, dict) for d in found) else None


_GLOBAL_HOOKS = _global_hook_dicts()


def traced_layer_call(tracer: torch.fx.Tracer, layer: nn.Module, arguments: list) -> Any:
    """Record ``layer(*arguments)`` as one ``call_module`` node: torch.fx would otherwise trace
    into the layer's forward, which may branch on sizes. The tracer's own ``call_module`` runs
    the recording, so its bookkeeping (module paths, torchvision's node names) sees the layer;
    a tracer that already treats the layer as a leaf records it itself."""

    def as_leaf(*args: Any, **kwargs: Any) -> Any:
        return tracer.create_proxy("call_module", tracer.path_of_module(layer), args, kwargs)

    return tracer.call_module(layer, as_leaf, tuple(arguments), {})


def _hook_dicts(module: nn.Module) -> list[dict]:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return [getattr(module, name) for name in names]


@dataclass
class Plan:
    """The compiled execution order used by ``Network.forward``.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(3), L.ReLU()])
        >>> plan = net._compile()
        >>> len(plan.steps), plan.chain is not None
        (2, True)
    """

    steps: list[Step]
    num_inputs: int
    outputs: tuple[int, ...]
    chain: list[nn.Module] | None
    accepted: list[tuple[int, ...]] = field(default_factory=list)
    hooks: list[dict] = field(default_factory=list)
    attributes: list[dict] = field(default_factory=list)  # each layer's __dict__

    def hooks_active(self) -> bool:
        """True when layers must be called through ``__call__``: a hook is registered (on a
        layer or globally), a layer was compiled with ``layer.compile()``, or the JIT tracer
        is recording."""
        return (
            _GLOBAL_HOOKS is None
            or any(_GLOBAL_HOOKS)
            or any(self.hooks)
            or any(map(operator.contains, self.attributes, repeat(_COMPILED)))
            or tracing()
        )


def _release(steps: list[Step], outputs: tuple[int, ...]) -> list[Step]:
    """Mark, for each step, the slots no later step reads, so forward can free them."""
    last_use: dict[int, int] = {}
    for index, (_, sources, _, _) in enumerate(steps):
        for slot in sources:
            last_use[slot] = index
    return [
        (module, sources, target, tuple(
            slot for slot in set(sources) if last_use[slot] == index and slot not in outputs
        ))
        for index, (module, sources, target, _) in enumerate(steps)
    ]  # fmt: skip


def _as_chain(
    steps: list[Step], num_inputs: int, outputs: tuple[int, ...]
) -> list[nn.Module] | None:
    """The layers in order when each step feeds only the next one, else None."""
    if num_inputs != 1 or len(outputs) != 1:
        return None
    expected = 0
    for _, sources, target, _ in steps:
        if sources != (expected,):
            return None
        expected = target
    return [module for module, *_ in steps] if expected == outputs[0] else None


def compile_plan(
    layers: list[tuple[str, nn.Module, list[str]]], inputs: list[str], outputs: list[str]
) -> Plan:
    """Number value slots for ``layers`` (name, module, source names; in execution order).

    Input layers without normalization are left out: their slot is the network input.
    """
    slots = {name: index for index, name in enumerate(inputs)}
    steps: list[Step] = []
    for name, module, sources in layers:
        if isinstance(module, InputLayer):
            if module.is_identity:
                continue
            sources = [name]
        steps.append((module, tuple(slots[src] for src in sources), len(inputs) + len(steps), ()))
        slots[name] = steps[-1][2]
    output_slots = tuple(slots[name] for name in outputs)
    steps = _release(steps, output_slots)
    never = (-1,)  # matches no input, so the first call is always checked
    hooks = [d for module, *_ in steps for d in _hook_dicts(module)]
    attributes = [module.__dict__ for module, *_ in steps]
    return Plan(
        steps, len(inputs), output_slots, _as_chain(steps, len(inputs), output_slots),
        [never] * len(inputs), hooks, attributes,
    )  # fmt: skip
