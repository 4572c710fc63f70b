"""Training-mode behaviour in traced graphs: ``self.training`` read in ``forward``.

``torch.fx`` records ``self.training`` as the constant it is while tracing, so a graph traced
in evaluation mode has ``F.dropout(h, 0.5, False)`` and no trace of an ``if self.training:``
branch. The module is therefore traced in both modes and the two graphs are merged:

- calls that are the same in both graphs but for a flag that is ``True`` in training and
  ``False`` in evaluation (``F.dropout(h, p, self.training)``, ``F.batch_norm(...,
  self.training, ...)``) take the module's mode: the flag becomes a ``get_attr`` of
  ``training`` (``{"training": true}`` in the stored layer), and ``F.dropout`` maps onto a
  ``Dropout`` layer;
- calls found in one graph only (the two sides of an ``if self.training:``) are kept, marked
  with the mode they run in (``node.meta["deeptoolbox_mode"]``), and where the two sides meet
  again a :func:`mode_select` call picks the value of the current mode (a ``ModeSwitch``
  layer); each side's layers only run in their own mode.

A module whose two graphs return differently shaped results (auxiliary outputs in training)
cannot be one network: :class:`ModeError` says so, and ``from_torch`` keeps it whole.
"""

from __future__ import annotations

import contextlib
import difflib
import operator
from collections.abc import Iterator
from typing import Any

import torch
import torch.fx as fx

from deeptoolbox.errors import ModeError, _ModeMismatch

MODE = "deeptoolbox_mode"  # node.meta key: "training" or "evaluation" for one side's calls
EVALUATION_GRAPH = "_deeptoolbox_evaluation_graph"  # the merged graph's evaluation-only graph
TRAINING, EVALUATION = "training", "evaluation"


def mode_select(training: bool, in_training: Any, in_evaluation: Any) -> Any:
    """The value of the current mode, where the two sides of ``if self.training:`` meet.

    Example:
        >>> mode_select(True, "dropped", "kept"), mode_select(False, "dropped", "kept")
        ('dropped', 'kept')
    """
    return in_training if training else in_evaluation


def has_modes(graph: fx.Graph) -> bool:
    """True when some calls of the graph run in one mode only.

    Example:
        >>> has_modes(fx.symbolic_trace(torch.nn.ReLU()).graph)
        False
    """
    return any(n.meta.get(MODE) for n in graph.nodes)


def _constant_key(gm: fx.GraphModule, node: fx.Node) -> Any:
    """What a ``get_attr`` reads: its target, but for a constant the tracer made itself
    (``_tensor_constant3``: each trace makes its own) the constant's size and values."""
    if node.op != "get_attr" or not str(node.target).startswith("_tensor_constant"):
        return None
    value = _attribute(gm, str(node.target), gm)
    if not isinstance(value, torch.Tensor):
        return None
    data = value.detach().cpu().contiguous()
    return ("constant", tuple(data.shape), str(data.dtype), hash(data.numpy().tobytes()))


def _signature(node: fx.Node, gm: fx.GraphModule) -> str:
    """What a call does, with its inputs and flags left out (for aligning the two graphs)."""
    constant = _constant_key(gm, node)
    if constant is not None:
        return repr(constant)

    def shape(value: Any) -> Any:
        if isinstance(value, fx.Node):
            return "node"
        if isinstance(value, bool):
            return "flag"
        if isinstance(value, tuple | list):
            return [shape(v) for v in value]
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        return repr(value)

    target = (
        node.target
        if isinstance(node.target, str)
        else getattr(node.target, "__qualname__", repr(node.target))
    )
    return repr((node.op, target, shape(node.args), shape(node.kwargs)))


class _Merge:
    """Builds the merged graph from the evaluation and training graphs."""

    def __init__(self, eval_gm: fx.GraphModule, train_gm: fx.GraphModule) -> None:
        self.eval_gm, self.train_gm = eval_gm, train_gm
        self.graph = fx.Graph()
        self.new: dict[fx.Node, fx.Node] = {}  # node of either graph -> merged node
        self.training_node: fx.Node | None = None
        self.not_training_node: fx.Node | None = None

    def _training(self, negated: bool) -> fx.Node:
        if self.training_node is None:
            self.training_node = self.graph.get_attr("training")
        if not negated:
            return self.training_node
        if self.not_training_node is None:
            self.not_training_node = self.graph.call_function(operator.not_, (self.training_node,))
        return self.not_training_node

    def _pair_arguments(self, in_eval: Any, in_train: Any, pairs: dict) -> Any:
        """The merged argument, or raise _ModeMismatch when the two calls differ otherwise."""
        if isinstance(in_eval, fx.Node) and isinstance(in_train, fx.Node):
            if pairs.get(in_train) is in_eval:
                return self.new[in_eval]
            if self.new.get(in_train) is not None and self.new.get(in_eval) is not None:
                return self._select(in_train, in_eval)
            raise _ModeMismatch
        if isinstance(in_eval, bool) and isinstance(in_train, bool) and in_eval != in_train:
            return self._training(negated=in_eval)  # False in eval: self.training; else not
        if isinstance(in_eval, tuple | list) and type(in_eval) is type(in_train):
            if len(in_eval) != len(in_train):
                raise _ModeMismatch
            items = [
                self._pair_arguments(a, b, pairs) for a, b in zip(in_eval, in_train, strict=True)
            ]
            return type(in_eval)(items)
        if isinstance(in_eval, dict) and isinstance(in_train, dict):
            if in_eval.keys() != in_train.keys():
                raise _ModeMismatch
            return {k: self._pair_arguments(in_eval[k], in_train[k], pairs) for k in in_eval}
        if isinstance(in_eval, fx.Node) or isinstance(in_train, fx.Node):
            raise _ModeMismatch
        if type(in_eval) is not type(in_train) or in_eval != in_train:
            raise _ModeMismatch
        return in_eval

    def _select(self, in_train: fx.Node, in_eval: fx.Node) -> fx.Node:
        key = ("select", in_train, in_eval)
        if key not in self.selects:
            self.selects[key] = self.graph.call_function(
                mode_select, (self._training(False), self.new[in_train], self.new[in_eval])
            )
        return self.selects[key]

    def _copy(self, node: fx.Node, mode: str | None) -> fx.Node:
        copied = self.graph.node_copy(node, lambda n: self.new[n])
        if mode is not None:
            copied.meta[MODE] = mode
        self.new[node] = copied
        return copied

    def _paired(self, e: fx.Node, t: fx.Node, pairs: dict) -> bool:
        before = set(self.selects)
        try:
            args = self._pair_arguments(e.args, t.args, pairs)
            kwargs = self._pair_arguments(dict(e.kwargs), dict(t.kwargs), pairs)
        except _ModeMismatch:
            for key in set(self.selects) - before:  # switches made for this call only
                self.graph.erase_node(self.selects.pop(key))
            return False
        merged = self.graph.create_node(e.op, e.target, tuple(args), kwargs, name=e.name)
        merged.meta = dict(e.meta)
        self.new[e] = self.new[t] = merged
        return True

    def merge(self) -> fx.GraphModule:
        self.selects: dict[tuple, fx.Node] = {}
        eval_nodes = [n for n in self.eval_gm.graph.nodes if n.op != "output"]
        train_nodes = [n for n in self.train_gm.graph.nodes if n.op != "output"]
        matcher = difflib.SequenceMatcher(
            None, [_signature(n, self.eval_gm) for n in eval_nodes],
            [_signature(n, self.train_gm) for n in train_nodes],
            autojunk=False,
        )  # fmt: skip
        pairs: dict[fx.Node, fx.Node] = {}  # training node -> evaluation node, when merged
        for tag, a0, a1, b0, b1 in matcher.get_opcodes():
            if tag == "equal":
                for e, t in zip(eval_nodes[a0:a1], train_nodes[b0:b1], strict=True):
                    if e.op in ("placeholder", "get_attr") or self._paired(e, t, pairs):
                        if e.op in ("placeholder", "get_attr"):  # same value (the signature)
                            self._copy(e, None)
                            self.new[t] = self.new[e]
                        pairs[t] = e
                    else:
                        self._copy(e, EVALUATION)
                        self._copy(t, TRAINING)
                continue
            for e in eval_nodes[a0:a1]:
                self._copy(e, EVALUATION if e.op != "placeholder" else None)
            for t in train_nodes[b0:b1]:
                if t.op == "placeholder":
                    raise ModeError("the module takes different inputs in training")
                self._copy(t, TRAINING)
        self._output(pairs)
        root: dict[str, Any] = {"training": False}
        for node in self.graph.nodes:
            if node.op in ("call_module", "get_attr") and node.target != "training":
                root[node.target] = _attribute(self.eval_gm, node.target, self.train_gm)
        merged = fx.GraphModule(root, self.graph, class_name=type(self.eval_gm).__name__)
        merged.__dict__[EVALUATION_GRAPH] = self.eval_gm  # not a submodule: no extra weights
        return merged

    def _output(self, pairs: dict) -> None:
        e_out = next(n for n in self.eval_gm.graph.nodes if n.op == "output")
        t_out = next(n for n in self.train_gm.graph.nodes if n.op == "output")
        try:
            result = self._pair_arguments(e_out.args[0], t_out.args[0], pairs)
        except _ModeMismatch:
            raise ModeError(
                "its forward returns differently made results in training and in evaluation "
                "(auxiliary outputs in training?)"
            ) from None
        self.graph.output(result)


def _attribute(gm: fx.GraphModule, target: str, fallback: fx.GraphModule) -> Any:
    """A submodule or attribute of a traced graph's root (the other graph's if missing)."""
    for source in (gm, fallback):
        owner, _, name = target.rpartition(".")
        try:
            holder = source.get_submodule(owner) if owner else source
            return getattr(holder, name)
        except AttributeError:
            continue
    raise ModeError(f"the traced graphs read '{target}', which neither graph holds")


def merge_modes(eval_gm: fx.GraphModule, train_gm: fx.GraphModule) -> fx.GraphModule:
    """One graph computing what the module does in both modes (see the module docstring).

    Returns ``eval_gm`` itself when the two graphs are the same.

    Example:
        >>> class Noisy(torch.nn.Module):
        ...     def forward(self, x):
        ...         return x + 1 if self.training else x
        >>> module = Noisy()
        >>> merged = merge_modes(fx.symbolic_trace(module.eval()), fx.symbolic_trace(module.train()))
        >>> sorted({n.meta.get(MODE, "both") for n in merged.graph.nodes})
        ['both', 'training']
    """
    if eval_gm.code == train_gm.code:
        return eval_gm
    return _Merge(eval_gm, train_gm).merge()


@contextlib.contextmanager
def running_in(gm: fx.GraphModule, training: bool) -> Iterator[None]:
    """Run ``gm`` in a mode, then put its mode, buffers (running statistics) and RNG back."""
    was_training = gm.training
    buffers = [(b, b.detach().clone()) for b in gm.buffers()] if training else []
    devices = sorted({t.device.index or 0 for t in gm.parameters() if t.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        _set_mode(gm, training)
        try:
            yield
        finally:
            _set_mode(gm, was_training)
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)


def _set_mode(gm: torch.nn.Module, training: bool) -> None:
    with contextlib.suppress(NotImplementedError):  # an ExportedProgram's module: as exported
        gm.train(training)


_DROPOUTS = ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
             "feature_alpha_dropout")  # fmt: skip


def mode_calls(graph: fx.Graph) -> list[str]:
    """Names of the calls that do something else in training (for messages): training-only
    calls, and calls reading the mode (but dropout with probability 0, which does nothing).

    Example:
        >>> mode_calls(fx.symbolic_trace(torch.nn.ReLU()).graph)
        []
    """
    found = []
    for node in graph.nodes:
        reads_mode = any(
            isinstance(a, fx.Node) and a.op == "get_attr" and a.target == "training"
            for a in node.all_input_nodes
        )
        if node.target in (mode_select, operator.not_) or not (node.meta.get(MODE) or reads_mode):
            continue
        if node.meta.get(MODE) == EVALUATION or _no_dropout(node):
            continue
        found.append(node.name)
    return found


def _no_dropout(node: fx.Node) -> bool:
    """A functional dropout with probability 0: the same in both modes."""
    if getattr(node.target, "__name__", None) not in _DROPOUTS:
        return False
    p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
    return isinstance(p, int | float) and p == 0
