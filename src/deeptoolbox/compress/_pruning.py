"""Structured pruning: remove whole filters, channels, units and heads from a Network.

:func:`prune` is the one-call version (MATLAB's ``compressNetworkUsingTaylorPruning`` loop,
or magnitude pruning), :class:`TaylorPruner` the pieces for a custom training loop (MATLAB's
``taylorPrunableNetwork`` with ``updateScore`` and ``updatePrunables``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deeptoolbox.compress._channels import ChannelGraph, Component, channel_count
from deeptoolbox.compress._data import batches
from deeptoolbox.compress._importance import (
    component_scores,
    head_norms,
    lowest,
    magnitude_scores,
    taylor_channel_scores,
)
from deeptoolbox.compress._placeholders import check_no_placeholders
from deeptoolbox.compress._surgery import remove_channels
from deeptoolbox.errors import CompressionError, OptionError
from deeptoolbox.layers._base import layer_type_name
from deeptoolbox.network import Network
from deeptoolbox.training import TrainingOptions, loss_function, train
from deeptoolbox.training._losses import logits_mode

IMPORTANCES = ("magnitude", "taylor")


def _learnables(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _check_network(net: Any, where: str) -> Network:
    if not isinstance(net, Network):
        raise OptionError(
            f"{where} works on a deeptoolbox Network. Received: {type(net).__name__}. Bring a "
            "torch model in first with deeptoolbox.from_torch(model, sample_input)."
        )
    check_no_placeholders(net, where)
    net.initialize()
    return net


def _check_fraction(where: str, option: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise OptionError(
            f"{where}: `{option}` must be a number strictly between 0 and 1 (the fraction to "
            f"remove). Received: {option}={value!r}. Example: {option}=0.5."
        )
    return float(value)


def _check_names(net: Network, names: Iterable[str] | None, option: str) -> list[str]:
    if names is None:
        return []
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if name not in net.layer_names:
            net.layer(name)  # raises LayerNotFoundError naming the layer and close matches
    return names


@dataclass
class LayerChange:
    """How one layer changed: its size (filters, units, heads...) before and after."""

    layer: str
    type: str
    size_before: int
    size_after: int
    learnables_before: int
    learnables_after: int


@dataclass
class PruningResult:
    """What :func:`prune` returns: the pruned network and what changed.

    Example:
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(4), L.Dense(8, name="hidden"), L.ReLU(), L.Dense(2)])
        >>> result = prune(net, ratio=0.5)
        >>> result.network.layer("hidden").units, result.learnables < result.original_learnables
        (4, True)
    """

    network: Network
    original_learnables: int
    learnables: int
    changes: list[LayerChange] = field(default_factory=list)
    training: list[Any] = field(default_factory=list)

    @property
    def learnables_reduction(self) -> float:
        """Fraction of learnables removed."""
        return 1 - self.learnables / self.original_learnables if self.original_learnables else 0.0

    def __str__(self) -> str:
        lines = [
            f"Pruned network '{self.network.name}': {self.original_learnables:,} -> "
            f"{self.learnables:,} learnables ({self.learnables_reduction:.1%} fewer)",
            f"  {'layer':<20} {'type':<14} {'size':>13} {'learnables':>21}",
        ]
        for c in self.changes:
            size = f"{c.size_before} -> {c.size_after}"
            learn = f"{c.learnables_before:,} -> {c.learnables_after:,}"
            lines.append(f"  {c.layer:<20} {c.type:<14} {size:>13} {learn:>21}")
        return "\n".join(lines)


def _size_of(module: nn.Module, shape) -> int:
    for attribute in ("filters", "units", "hidden_size", "num_heads"):
        if hasattr(module, attribute):
            return int(getattr(module, attribute))
    return channel_count(shape)


def layer_changes(original: Network, pruned: Network) -> list[LayerChange]:
    """The layers whose size or learnables differ between two versions of a network."""
    changes = []
    for name in original.layer_names:
        if name not in pruned.layer_names:
            continue
        before, after = original.layer(name), pruned.layer(name)
        counts = (_learnables(before), _learnables(after))
        sizes = (
            _size_of(before, original.output_shape(name)),
            _size_of(after, pruned.output_shape(name)),
        )
        sized = counts[0] > 0 or hasattr(after, "filters") or hasattr(after, "units")
        if sized and (counts[0] != counts[1] or sizes[0] != sizes[1]):
            changes.append(LayerChange(name, layer_type_name(after), *sizes, *counts))
    return changes


# -- selecting what to remove ----------------------------------------------------------------
def _candidate_groups(graph: ChannelGraph, layers: list[str]) -> dict[tuple, list[Component]]:
    groups = graph.groups()
    if not layers:
        return groups
    chosen = {sig: comps for sig, comps in groups.items() if set(sig) & set(layers)}
    for name in layers:
        reason = graph.why_not(name)
        if reason is not None:
            raise CompressionError(
                f"prune: layer '{name}' cannot be pruned: {reason}. Layers that can: "
                f"{sorted({n for sig in groups for n in sig} | set(graph.heads))}."
            )
    return chosen


def _select(graph, scores, groups, targets) -> set[int]:
    """Remove, in every group, the lowest-scored components down to ``targets[signature]``."""
    removed: set[int] = set()
    for signature, components in groups.items():
        keep = max(1, min(len(components), targets.get(signature, len(components))))
        removed.update(lowest(scores, len(components) - keep, components))
    return removed


def _head_plan(graph, net, keep_fraction, layers, norm, original) -> dict[str, list[int]]:
    plan = {}
    for name, group in graph.heads.items():
        if group.blocked or group.heads < 2 or (layers and name not in layers):
            continue
        start = original.get(name, group.heads)
        keep = max(1, min(group.heads, start - math.floor(start * (1 - keep_fraction) + 1e-9)))
        order = torch.argsort(head_norms(net.layer(name), norm), descending=True)
        plan[name] = sorted(int(i) for i in order[:keep])
    return plan


def _prune_once(net, graph, scores, keep_fraction, layers, heads, norm, original) -> Network:
    """Keep ``keep_fraction`` of each group's channels as counted in ``original``."""
    groups = _candidate_groups(graph, layers)
    targets = {}
    for signature, components in groups.items():
        start = original.get(signature, len(components))
        targets[signature] = start - math.floor(start * (1 - keep_fraction) + 1e-9)
    removed = _select(graph, scores, groups, targets)
    plan = _head_plan(graph, net, keep_fraction, layers, norm, original) if heads else {}
    return remove_channels(net, graph, removed, plan)


def _counts(graph: ChannelGraph) -> dict:
    counts: dict = {sig: len(comps) for sig, comps in graph.groups().items()}
    counts.update({name: group.heads for name, group in graph.heads.items()})
    return counts


# -- scores ------------------------------------------------------------------------------
def _scores(net, graph, importance, norm, data, loss, limit) -> dict[int, float]:
    if importance == "magnitude":
        return magnitude_scores(graph, norm)
    pruner = TaylorPruner(net, _graph=graph)
    try:
        pruner.accumulate(data, loss, limit=limit)
        return pruner.component_scores()
    finally:
        pruner.detach()


def _reduction_search(net, graph, scores, goal, original, layers, heads, norm, counts):
    """The smallest uniform fraction whose pruned network has ``goal`` fewer learnables."""
    low, high, best = 0.0, 0.95, None
    for _ in range(12):
        middle = (low + high) / 2
        candidate = _prune_once(net, graph, scores, 1 - middle, layers, heads, norm, counts)
        if 1 - _learnables(candidate) / original >= goal:
            best, high = candidate, middle
        else:
            low = middle
    if best is None:
        best = _prune_once(net, graph, scores, 1 - high, layers, heads, norm, counts)
    return best


def prune(
    net: Network,
    data: Any = None,
    loss: Any = "crossentropy",
    *,
    ratio: float | None = None,
    learnables_reduction: float | None = None,
    steps: int = 1,
    importance: str = "magnitude",
    norm: str = "l2",
    fine_tune: TrainingOptions | None = None,
    layers: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    heads: bool = True,
    scoring_observations: int = 1024,
) -> PruningResult:
    """Remove the least important filters, channels, units and heads; return a plain Network.

    Coupled layers are pruned together: the channels of all branches of a residual
    ``Addition``, the inputs of a ``Concatenation``, depthwise and grouped convolutions, the
    BatchNorm after a convolution, the columns of the next layer. The output layers and the
    layers in ``exclude`` keep their channels. The network passed in is not changed.

    Args:
        net: the network to prune.
        data: ``(inputs, targets)`` or any training data; needed for ``importance="taylor"``
            and for ``fine_tune``.
        loss: the training loss (for Taylor scores and fine-tuning).
        ratio: fraction of the prunable channels (and heads) of every group to remove.
        learnables_reduction: alternatively, the fraction of learnables to remove (the
            smallest uniform ratio that reaches it is used).
        steps: prune in this many steps (each followed by fine-tuning when ``fine_tune``).
        importance: "magnitude" (weight norms) or "taylor" (activation x gradient on ``data``).
        norm: "l1" or "l2" for magnitude importance.
        fine_tune: TrainingOptions for :func:`~deeptoolbox.train` after each step.
        layers: only prune the channels made by these layers (default: all that can be).
        exclude: layers whose channels must be kept.
        heads: also prune SelfAttention heads (by magnitude).
        scoring_observations: observations of ``data`` used for Taylor scores per step.

    Returns:
        A :class:`PruningResult`: ``.network`` is an ordinary Network whose layer sizes are the
        new ones, so it saves, reloads from its config and exports like any other.

    Raises:
        OptionError: ratio / learnables_reduction outside (0, 1), bad options.
        LayerNotFoundError: a name in ``layers`` or ``exclude`` is not a layer.
        CompressionError: a layer in ``layers`` has no channels that can be removed.

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(8, 3, padding=1, name="conv"),
        ...                L.BatchNorm(), L.ReLU(), L.GlobalAvgPool(), L.Dense(3)])
        >>> pruned = prune(net, ratio=0.5).network
        >>> pruned.layer("conv")
        Conv2d(filters=4, kernel_size=3, padding=1)
        >>> pruned(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 3])
    """
    net = _check_network(net, "prune")
    if (ratio is None) == (learnables_reduction is None):
        raise OptionError(
            "prune: give exactly one of `ratio` (fraction of channels to remove) and "
            f"`learnables_reduction`. Received: ratio={ratio!r}, "
            f"learnables_reduction={learnables_reduction!r}."
        )
    goal = _check_fraction(
        "prune", "ratio" if ratio is not None else "learnables_reduction",
        ratio if ratio is not None else learnables_reduction,
    )  # fmt: skip
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise OptionError(f"prune: `steps` must be a positive int. Received: steps={steps!r}.")
    if importance not in IMPORTANCES:
        raise OptionError(
            f"prune: `importance` must be 'magnitude' or 'taylor'. Received: {importance!r}."
        )
    if (importance == "taylor" or fine_tune is not None) and data is None:
        raise OptionError(
            "prune: `data` (inputs and targets) is needed for importance='taylor' and for "
            "fine_tune. Pass prune(net, (x, y), 'crossentropy', ...)."
        )
    layers = _check_names(net, layers, "layers")
    exclude = _check_names(net, exclude, "exclude")
    original = _learnables(net)
    current, history, counts = net, [], _counts(ChannelGraph(net, exclude))
    for step in range(1, steps + 1):
        graph = ChannelGraph(current, exclude)
        scores = _scores(current, graph, importance, norm, data, loss, scoring_observations)
        keep = (1 - goal) ** (step / steps)  # left after step k: (1 - goal) ** (k / steps)
        if ratio is not None:
            current = _prune_once(current, graph, scores, keep, layers, heads, norm, counts)
        else:
            current = _reduction_search(
                current, graph, scores, 1 - keep, original, layers, heads, norm, {}
            )
        if fine_tune is not None:
            history.append(train(current, data, loss, fine_tune))
    return PruningResult(current, original, _learnables(current), layer_changes(net, current),
                         history)  # fmt: skip


# -- Taylor pruning in a custom loop -------------------------------------------------------
class TaylorPruner:
    """First-order Taylor pruning driven from your own training loop (MATLAB's
    ``taylorPrunableNetwork``, ``updateScore`` and ``updatePrunables``).

    The pruner watches ``net``: after each ``loss.backward()`` call :meth:`update_score` to
    accumulate activation x gradient per channel; every few iterations call
    :meth:`update_prunables` to mask the lowest-scored channels (their outputs become zero,
    everywhere they flow, so training continues without them); at the end :meth:`compress`
    returns a plain Network with those channels physically removed. ``net`` keeps the masks
    until :meth:`detach` (or :meth:`compress`).

    Example:
        >>> import torch
        >>> from deeptoolbox import Network, layers as L
        >>> torch.manual_seed(0) and None
        >>> net = Network([L.FeatureInput(4), L.Dense(8, name="hidden"), L.ReLU(), L.Dense(2)])
        >>> pruner = TaylorPruner(net)
        >>> x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
        >>> for _ in range(3):
        ...     loss = torch.nn.functional.cross_entropy(net(x), y)
        ...     loss.backward()
        ...     pruner.update_score()
        >>> pruner.update_prunables(max_to_prune=3)
        >>> pruner.num_pruned, pruner.compress().layer("hidden").units
        (3, 5)
    """

    def __init__(
        self, net: Network, *, exclude: Sequence[str] = (), _graph: ChannelGraph | None = None
    ) -> None:
        self.network = _check_network(net, "TaylorPruner")
        exclude = _check_names(net, exclude, "exclude")
        self.graph = _graph or ChannelGraph(net, exclude)
        if not self.graph.prunable():
            raise CompressionError(
                f"TaylorPruner: network '{net.name}' has no channels that can be pruned "
                "(every channel reaches an input, an output or a layer that mixes channels)."
            )
        self.pruned: set[int] = set()
        self._producers = sorted({n for c in self.graph.prunable() for n in c.producers})
        self._scores = {n: torch.zeros(self.graph.spaces[n]) for n in self._producers}
        self._captured: dict[str, torch.Tensor] = {}
        self._gradients: dict[str, torch.Tensor] = {}
        self._masks: dict[str, torch.Tensor] = {}
        self._handles = [net.layer(n).register_forward_hook(self._hook(n)) for n in net.layer_names]

    @property
    def num_prunables(self) -> int:
        """Channels (components) that can still be pruned."""
        return len(self.graph.prunable()) - len(self.pruned)

    @property
    def num_pruned(self) -> int:
        """Channels masked so far."""
        return len(self.pruned)

    def _hook(self, name: str):
        rank = len(self.network.output_shape(name) or ())

        def hook(module, inputs, output):
            mask = self._masks.get(name)
            if mask is not None:
                shape = [1] * output.dim()
                shape[-1 if rank <= 2 else 1] = -1
                output = output * mask.to(output.device, output.dtype).view(shape)
            if name in self._scores and output.requires_grad:
                self._captured[name] = output.detach()
                output.register_hook(lambda grad: self._gradients.__setitem__(name, grad))
            return output

        return hook

    def update_score(self) -> None:
        """Add this iteration's Taylor scores (call after ``loss.backward()``)."""
        if not self._gradients:
            raise CompressionError(
                "TaylorPruner.update_score: no gradients were recorded. Run the network on a "
                "batch with gradients enabled and call loss.backward() first."
            )
        for name, gradient in self._gradients.items():
            rank = len(self.network.output_shape(name) or ())
            score = taylor_channel_scores(self._captured[name], gradient, rank)
            self._scores[name] += score.cpu()
        self._captured.clear()
        self._gradients.clear()

    def accumulate(self, data: Any, loss: Any = "crossentropy", *, limit: int = 1024) -> None:
        """Run ``data`` (with targets) through the network, backpropagate ``loss`` and
        accumulate scores, without changing any weight."""
        loss_object = loss_function(loss)
        was_training = self.network.training
        self.network.eval()
        parameters = [p for p in self.network.parameters() if p.requires_grad]
        try:
            with logits_mode(self.network, loss_object):
                for batch in batches(self.network, data, 64, "prune: `data`", limit=limit):
                    outputs = self.network(*batch.inputs)
                    value = loss_object(outputs, batch.target, batch.mask)
                    torch.autograd.grad(value, parameters or outputs, allow_unused=True)
                    self.update_score()
        finally:
            self.network.train(was_training)

    def component_scores(self) -> dict[int, float]:
        """Accumulated score of every prunable channel component (lower: less important)."""
        return component_scores(self.graph, self._scores)

    def update_prunables(self, max_to_prune: int = 8) -> None:
        """Mask the ``max_to_prune`` lowest-scored channels, then reset the scores."""
        if isinstance(max_to_prune, bool) or not isinstance(max_to_prune, int) or max_to_prune < 1:
            raise OptionError(
                f"update_prunables: `max_to_prune` must be a positive int. Received: "
                f"{max_to_prune!r}."
            )
        scores = self.component_scores()
        remaining: dict[tuple, int] = {}
        for component in self.graph.prunable():
            if component.index not in self.pruned:
                remaining[component.signature] = remaining.get(component.signature, 0) + 1
        candidates = [c for c in self.graph.prunable() if c.index not in self.pruned]
        chosen = 0
        for index in lowest(scores, len(candidates), candidates):
            signature = next(c.signature for c in candidates if c.index == index)
            if chosen == max_to_prune:
                break
            if remaining[signature] > 1:  # never remove every channel of a group
                remaining[signature] -= 1
                self.pruned.add(index)
                chosen += 1
        self._update_masks()
        for values in self._scores.values():
            values.zero_()

    def _update_masks(self) -> None:
        kept = self.graph.kept(self.pruned)
        self._masks = {}
        for name, count in self.graph.spaces.items():
            if len(kept[name]) < count:
                mask = torch.zeros(count)
                mask[kept[name]] = 1.0
                self._masks[name] = mask

    def detach(self) -> None:
        """Remove the pruner's hooks (and masks) from the network."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def compress(self) -> Network:
        """A plain Network without the masked channels (MATLAB's ``dlnetwork(prunableNet)``);
        detaches the pruner."""
        self.detach()
        return remove_channels(self.network, self.graph, set(self.pruned))

    def __deepcopy__(self, memo):  # the hooks belong to one network: copy without them
        clone = copy.copy(self)
        clone._handles = []
        return clone
