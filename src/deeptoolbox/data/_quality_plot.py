"""The picture of a data-quality report (``QualityReport.plot``)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

__all__ = ["plot_report"]

_COLORS = {"error": "#c0392b", "warning": "#e67e22"}


def _class_panel(axis: Any, summary: dict[str, Any]) -> None:
    per_split = summary.get("classes") or {}
    classes = sorted({str(c) for counts in per_split.values() for c in counts})
    if not classes:
        axis.text(0.5, 0.5, "no labels", ha="center", va="center")
        axis.set_axis_off()
        return
    width = 0.8 / max(len(per_split), 1)
    for k, (split, counts) in enumerate(per_split.items()):
        named = {str(c): n for c, n in counts.items()}
        axis.bar(np.arange(len(classes)) + k * width, [named.get(c, 0) for c in classes],
                 width, label=split)  # fmt: skip
    axis.set_xticks(np.arange(len(classes)) + width * (len(per_split) - 1) / 2, classes,
                    rotation=45 if len(classes) > 8 else 0, fontsize=8)  # fmt: skip
    axis.set_title("observations per class")
    axis.legend(fontsize=8)


def _findings_panel(axis: Any, report: Any) -> None:
    counts = Counter((f.check, f.severity) for f in report.findings)
    if not counts:
        axis.text(0.5, 0.5, "no findings", ha="center", va="center", fontsize=12)
        axis.set_axis_off()
        return
    names = [f"{c}" for c, _ in counts]
    axis.barh(names, list(counts.values()), color=[_COLORS[s] for _, s in counts])
    axis.invert_yaxis()
    axis.set_title("findings per check")
    axis.tick_params(axis="y", labelsize=8)


def _size_panel(axis: Any, report: Any) -> None:
    sizes = report.summary.get("image_sizes") or {}
    lengths = [i.shape[0] for i in report.items if i.error is None and i.kind == "signal"]
    if sizes:
        axis.bar(list(sizes)[:10], list(sizes.values())[:10], color="#34495e")
        axis.set_title("image sizes (H x W)")
        axis.tick_params(axis="x", labelsize=8)
    elif lengths:
        axis.hist(lengths, bins=min(30, max(5, len(set(lengths)))), color="#34495e")
        axis.set_title("signal lengths (samples)")
    else:
        axis.set_axis_off()


def _statistics_panel(axis: Any, report: Any) -> None:
    readable = [i for i in report.items if i.error is None and np.isfinite([i.mean, i.std]).all()]
    flagged = {}
    for f in report.findings:
        for name in f.files:
            flagged.setdefault(name, f.check)
    plain = [i for i in readable if i.name not in flagged]
    axis.scatter([i.mean for i in plain], [i.std for i in plain], s=8, color="#95a5a6",
                 label="no finding")  # fmt: skip
    for check in sorted({flagged[i.name] for i in readable if i.name in flagged}):
        marked = [i for i in readable if flagged.get(i.name) == check]
        axis.scatter([i.mean for i in marked], [i.std for i in marked], s=22, label=check)
    kinds = {i.kind for i in readable}
    axis.set_xlabel("mean")
    axis.set_ylabel("RMS" if kinds == {"signal"} else "standard deviation")
    axis.set_title("each observation")
    if readable:
        axis.legend(fontsize=7)


def plot_report(report: Any, path: str | os.PathLike | None = None) -> Any:
    """Draw ``report`` (a QualityReport) in four panels; saved to ``path`` when given."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    _class_panel(axes[0, 0], report.summary)
    _findings_panel(axes[0, 1], report)
    _size_panel(axes[1, 0], report)
    _statistics_panel(axes[1, 1], report)
    s = report.summary
    figure.suptitle(f"{s.get('observations', 0)} observations, {s.get('unreadable', 0)} "
                    f"unreadable, {len(report.findings)} finding(s)")  # fmt: skip
    figure.tight_layout()
    if path is not None:
        from deeptoolbox._atomic import atomic_path

        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=80)
    return figure
