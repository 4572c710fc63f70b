"""SimulationResult: the logged signals of a simulation, batch x time x channels."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from deeptoolbox._atomic import atomic_path
from deeptoolbox.errors import DiagramError

__all__ = ["SimulationResult"]


@dataclass
class SimulationResult:
    """What :func:`simulate` returns: ``time`` (T,) and ``signals``, a dict ``"block/port"``
    (or a Scope's name) -> tensor (batch, T, channels); ``result["plant/out"]`` is one.

    Example:
        >>> import torch
        >>> r = SimulationResult(torch.tensor([0.0, 1.0]), {"x/out": torch.zeros(1, 2, 1)})
        >>> r["x/out"].shape, r.names
        (torch.Size([1, 2, 1]), ['x/out'])
    """

    time: torch.Tensor
    signals: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The logged signal names."""
        return list(self.signals)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.signals:
            close = difflib.get_close_matches(name, self.names, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise DiagramError(
                f"SimulationResult: no signal named '{name}'.{hint} Logged: "
                f"{', '.join(self.names) or '(none)'}. Log more with simulate(..., log=[...])."
            )
        return self.signals[name]

    def __contains__(self, name: object) -> bool:
        return name in self.signals

    def plot(self, names: Sequence[str] | None = None, path: str | os.PathLike | None = None,
             *, batch: Sequence[int] | int | None = None) -> Any:  # fmt: skip
        """One panel per signal against time (every channel; ``batch``: which cases, default
        up to 8); a PNG at ``path`` when given. Returns the matplotlib Figure."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        names = list(names) if names is not None else self.names
        values = [self[name] for name in names]
        rows = [batch] if isinstance(batch, int) else batch
        figure = Figure(figsize=(8, 2.2 * max(len(names), 1)), dpi=100)
        FigureCanvasAgg(figure)
        time = self.time.detach().cpu().numpy()
        for index, (name, value) in enumerate(zip(names, values, strict=True)):
            axes = figure.add_subplot(len(names), 1, index + 1)
            cases = rows if rows is not None else range(min(value.shape[0], 8))
            for case in cases:
                for channel in range(value.shape[2]):
                    axes.plot(time, value[case, :, channel].detach().cpu().numpy(), lw=1)
            axes.set_ylabel(name, fontsize=8)
            axes.grid(alpha=0.3)
        if names:
            figure.axes[-1].set_xlabel("time (s)")
        figure.tight_layout()
        if path is not None:
            with atomic_path(Path(path), suffix=".png") as temporary:
                figure.savefig(temporary, format="png")
        return figure
