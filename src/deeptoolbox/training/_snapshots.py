"""Weight snapshots: the best network, and the last good ones to roll back to after a NaN.

train() checks losses for NaN/Inf only when it reads them back (at flushes), so a bad loss
is found up to ``verbose_frequency`` iterations late, after the network was updated with
it. :class:`WeightSnapshots` keeps the weights of the last two checked points in host memory
(pinned, and copied without waiting, when training on CUDA), and gives back the newest one
whose values are all finite.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["snapshot", "WeightSnapshots"]


def snapshot(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``net``'s parameters and buffers.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> copy = snapshot(net)
        >>> with torch.no_grad():
        ...     _ = net.weight.zero_()
        >>> bool(copy["weight"].abs().sum() > 0)
        True
    """
    return {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}


class WeightSnapshots:
    """Two rotating host copies of a network's weights, each tagged with its iteration.

    ``take`` copies into preallocated buffers (asynchronously from a CUDA device, into
    pinned memory: no host synchronization); ``restore`` loads the newest copy that holds
    only finite values and returns its iteration.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> snapshots = WeightSnapshots()
        >>> snapshots.take(net, 0)
        >>> with torch.no_grad():
        ...     _ = net.weight.fill_(float("nan"))
        >>> snapshots.take(net, 5)  # already bad: the older copy is the good one
        >>> snapshots.restore(net), bool(torch.isfinite(net.weight).all())
        (0, True)
    """

    def __init__(self, state: Any = None) -> None:
        self.slots: list[tuple[int, dict[str, torch.Tensor]]] = []
        # sharded training: this process's shards (views), copied back in place by restore
        self.state = state

    def take(self, net: torch.nn.Module, iteration: int) -> None:
        state = self.state(net) if self.state is not None else net.state_dict()
        if len(self.slots) < 2:
            buffers = {k: _host_buffer(v) for k, v in state.items()}
        else:
            _, buffers = self.slots.pop(0)  # reuse the older copy's memory
            if buffers.keys() != state.keys():
                buffers = {k: _host_buffer(v) for k, v in state.items()}
        for key, value in state.items():
            buffers[key].copy_(value.detach(), non_blocking=True)
        self.slots.append((iteration, buffers))

    def restore(self, net: torch.nn.Module) -> int | None:
        """Load the newest finite copy into ``net``; its iteration (None: no finite copy)."""
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # the copies may still be on their way
        for iteration, buffers in reversed(self.slots):
            if all(torch.isfinite(v).all() for v in buffers.values() if v.is_floating_point()):
                if self.state is None:
                    net.load_state_dict(buffers)
                else:
                    with torch.no_grad():
                        for key, value in self.state(net).items():
                            value.copy_(buffers[key])
                return iteration
        return None


def _host_buffer(value: torch.Tensor) -> torch.Tensor:
    pinned = value.device.type == "cuda"
    return torch.empty(value.shape, dtype=value.dtype, device="cpu", pin_memory=pinned)
