"""The data-quality report (``quality_report``, ``deeptoolbox data check``): one pass over a
data set that lists what would hurt training, each finding naming the files involved."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deeptoolbox.data import _quality_plot
from deeptoolbox.data._quality_checks import (
    CHECKS,
    Finding,
    QualityLimits,
    class_counts,
    run_checks,
)
from deeptoolbox.data._quality_scan import Scanned, scan
from deeptoolbox.errors import OptionError

__all__ = ["QualityReport", "Finding", "quality_report"]


@dataclass
class QualityReport:
    """What :func:`quality_report` found: ``findings`` (one :class:`Finding` per problem,
    errors first within each check's order) and ``summary`` (counts: observations per split,
    classes per split, image sizes, channels, file formats, signal lengths, sample rates).

    ``print(report)`` shows both as text; :meth:`to_frame` gives one row per finding and
    file (pandas), :meth:`to_json` the whole report, :meth:`plot` a picture of it.

    Example:
        >>> import numpy as np
        >>> from deeptoolbox.data import ArrayDatastore
        >>> x = np.random.default_rng(0).random((6, 1, 8, 8)); x[5] = x[0]  # a duplicate
        >>> report = quality_report(ArrayDatastore(x, targets=list("aaabbb")))
        >>> [(f.check, f.files) for f in report.findings]
        [('exact-duplicates', ('#0', '#5')), ('conflicting-labels', ('#0', '#5'))]
    """

    findings: list[Finding]
    summary: dict[str, Any]
    items: list[Scanned] = field(default_factory=list, repr=False)

    def by_check(self, check: str) -> list[Finding]:
        """The findings of one check (a key of ``CHECKS``).

        Example:
            >>> QualityReport([], {}).by_check("unreadable")
            []
        """
        if check not in CHECKS:
            raise OptionError(
                f"QualityReport.by_check: unknown check {check!r}. Checks: {list(CHECKS)}."
            )
        return [f for f in self.findings if f.check == check]

    @property
    def errors(self) -> list[Finding]:
        """The findings of severity "error" (unreadable files, leakage, NaN values...)."""
        return [f for f in self.findings if f.severity == "error"]

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per finding and file: ``finding`` (its number), ``check``, ``severity``,
        ``file``, ``split``, ``label``, ``message``.

        Example:
            >>> QualityReport([], {}).to_records()
            []
        """
        where = {i.name: i for i in self.items}
        rows = []
        for number, finding in enumerate(self.findings):
            for name in finding.files:
                item = where.get(name)
                rows.append({
                    "finding": number, "check": finding.check, "severity": finding.severity,
                    "file": name, "split": None if item is None else item.split,
                    "label": None if item is None else _plain(item.label),
                    "message": finding.message,
                })  # fmt: skip
        return rows

    def to_frame(self) -> Any:
        """The findings as a pandas DataFrame, one row per finding and file (see
        :meth:`to_records`).

        Example:
            >>> list(QualityReport([], {}).to_frame().columns)[:3]
            ['finding', 'check', 'severity']
        """
        import pandas as pd

        columns = ["finding", "check", "severity", "file", "split", "label", "message"]
        return pd.DataFrame(self.to_records(), columns=columns)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON (summary and findings); written atomically to ``path`` too.

        Example:
            >>> json.loads(QualityReport([], {"observations": 0}).to_json())["findings"]
            []
        """
        text = json.dumps(
            {"summary": _plain(self.summary),
             "findings": [{"check": f.check, "severity": f.severity, "message": f.message,
                           "files": list(f.files)} for f in self.findings]},
            indent=2,
        )  # fmt: skip
        if path is not None:
            from deeptoolbox._atomic import atomic_open

            with atomic_open(path, "w") as stream:
                stream.write(text + "\n")
        return text

    def plot(self, path: str | os.PathLike | None = None) -> Any:
        """A figure of the report: classes per split, findings per check, image sizes or
        signal lengths, and each observation's mean against its spread with the flagged ones
        marked. Saved to ``path`` when given. Returns the matplotlib figure.

        Example:
            >>> import matplotlib; matplotlib.use("Agg")
            >>> from deeptoolbox.data import ArrayDatastore
            >>> report = quality_report(ArrayDatastore(np.random.rand(12, 1, 8, 8)))
            >>> len(report.plot().axes)
            4
        """
        return _quality_plot.plot_report(self, path)

    def __str__(self) -> str:
        s = self.summary
        lines = [f"Data-quality report: {s.get('observations', 0)} observations "
                 f"({s.get('unreadable', 0)} unreadable), {len(self.findings)} finding(s)"]  # fmt: skip
        for name in ("splits", "classes", "image_sizes", "channels", "formats",
                     "signal_lengths", "sample_rates"):  # fmt: skip
            if s.get(name):
                lines.append(f"  {name.replace('_', ' ')}: {_inline(s[name])}")
        for f in self.findings:
            shown = ", ".join(f.files[:4]) + (f" (+{len(f.files) - 4})" if len(f.files) > 4 else "")
            lines.append(f"  [{f.severity}] {f.check}: {f.message} -- {shown}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        counts = Counter(f.check for f in self.findings)
        return f"QualityReport({self.summary.get('observations', 0)} observations, {dict(counts)})"


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_inline(v)}" for k, v in value.items())
    return str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _summary(items: list[Scanned]) -> dict[str, Any]:
    readable = [i for i in items if i.error is None]
    images = [i for i in readable if i.kind == "image"]
    signals = [i for i in readable if i.kind == "signal"]
    lengths = [i.shape[0] for i in signals]
    summary: dict[str, Any] = {
        "observations": len(items),
        "unreadable": len(items) - len(readable),
        "splits": dict(Counter(i.split for i in items)),
        "classes": class_counts(items),
        "image_sizes": {
            f"{h}x{w}": n for (h, w), n in Counter(i.shape[1:] for i in images).most_common()
        },  # fmt: skip
        "channels": dict(
            Counter(
                i.shape[0] if i.kind == "image" else i.shape[-1] for i in images + signals
            ).most_common()
        ),  # fmt: skip
        "formats": dict(Counter(i.format for i in readable if i.format).most_common()),
        "signal_lengths": {}
        if not lengths
        else {
            "min": int(min(lengths)),
            "median": float(np.median(lengths)),
            "max": int(max(lengths)),
        },  # fmt: skip
        "sample_rates": dict(
            Counter(i.sample_rate for i in signals if i.sample_rate is not None).most_common()
        ),  # fmt: skip
    }
    return summary


def _probabilities(network: torch.nn.Module, inputs: list[torch.Tensor]) -> torch.Tensor:
    device = next((p.device for p in network.parameters()), torch.device("cpu"))
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = torch.cat([network(torch.stack(inputs[k : k + 64]).to(device)).float().cpu()
                             for k in range(0, len(inputs), 64)])  # fmt: skip
    finally:
        network.train(was_training)
    sums = out.sum(dim=1)
    is_probability = bool(
        (out >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=1e-3)
    )
    return out if is_probability else torch.softmax(out, dim=1)


def _disagreements(
    items: list[Scanned], splits: dict[str, Any], network: torch.nn.Module, confidence: float
) -> list[Finding]:
    """Observations that ``network`` gives to another class than their label with at least
    ``confidence`` probability."""
    findings = []
    for split, ds in splits.items():
        mine = [i for i in items if i.split == split and i.error is None and i.label is not None]
        if not mine:
            continue
        classes = list(getattr(network, "classes", None) or getattr(ds, "classes", None) or [])
        inputs = []
        for item in mine:
            observation = ds[item.position]
            inputs.append(observation[0] if isinstance(observation, tuple) else observation)
        probabilities = _probabilities(network, inputs)
        best, predicted = probabilities.max(dim=1)
        for item, p, k in zip(mine, best.tolist(), predicted.tolist(), strict=True):
            name = classes[k] if k < len(classes) else k
            if p >= confidence and str(name) != str(item.label):
                message = f"labelled '{item.label}', the network says '{name}' ({p:.0%})"
                findings.append(Finding("label-disagreement", CHECKS["label-disagreement"],
                                        message, (item.name,)))  # fmt: skip
    return findings


def _number(value: Any, low: float, high: float, *, integer: bool = False,
            open_low: bool = False) -> bool:  # fmt: skip
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds):
        return False
    return (value > low if open_low else value >= low) and value <= high


_LIMITS = {  # option: (allowed, check)
    "near_duplicate_distance": ("an int in [0, 64]", lambda v: _number(v, 0, 64, integer=True)),
    "near_duplicate_difference": ("a number in [0, 1]", lambda v: _number(v, 0, 1)),
    "outlier_z": ("a number > 0", lambda v: _number(v, 0, float("inf"), open_low=True)),
    "min_class_fraction": ("a number in [0, 1]", lambda v: _number(v, 0, 1)),
    "confidence": ("a number in (0, 1]", lambda v: _number(v, 0, 1, open_low=True)),
}


def _check_limits(**given: Any) -> QualityLimits:
    for name, value in given.items():
        allowed, valid = _LIMITS[name]
        if not valid(value):
            raise OptionError(
                f"quality_report: `{name}` must be {allowed}. Received: {name}={value!r}."
            )
    given.pop("confidence")
    return QualityLimits(**given)


def quality_report(
    data: Any,
    *,
    network: torch.nn.Module | None = None,
    near_duplicate_distance: int = 12,
    near_duplicate_difference: float = 0.02,
    outlier_z: float = 6.0,
    min_class_fraction: float = 0.2,
    confidence: float = 0.9,
) -> QualityReport:
    """Check a data set for what would hurt training; every finding names its files.

    ``data`` is a folder (image or signal files; class subfolders give labels; top-level
    folders named ``train``/``training``, ``val``/``validation``, ``test``/``testing`` are
    read as splits), a datastore (``ImageDatastore``, ``SignalDatastore``, any labelled
    ``Datastore`` such as ``ArrayDatastore``), or a dict of datastores by split name
    (``{"train": train_ds, "test": test_ds}``). Each observation is read once, as stored
    (no resizing or augmentation).

    The checks (``CHECKS``): files that cannot be read; observations with identical content
    (pixels or samples, whatever the file format); near-duplicate images: perceptual hashes
    (ImageHash's pHash) differing in at most ``near_duplicate_distance`` of 64 bits, confirmed
    by 16 x 16 gray thumbnails differing by at most ``near_duplicate_difference`` (mean
    absolute difference in [0, 1]; a JPEG re-encoding at quality 50 or a resize stays
    within both); duplicates that sit in different splits
    (leakage) or carry different labels; classes smaller than ``min_class_fraction`` of the
    largest, and classes missing from a split; mixed image sizes, channel counts or sample
    rates (the sample rate of a ``.mat`` signal file is its scalar ``fs``/``Fs``/
    ``sample_rate`` variable); blank (constant) images; NaN/Inf values and constant
    channels; observations whose mean or spread (RMS for signals) lies more than
    ``outlier_z`` robust standard deviations (median absolute deviation) from the median,
    among at least 10. With a classifier ``network``, observations it gives to another class
    than their label with at least ``confidence`` probability are listed too (inputs as the
    datastore gives them: give it an ``output_size`` the network takes).

    Example:
        >>> import tempfile
        >>> from deeptoolbox.datasets import digits, write_image_folder
        >>> images, labels = digits()
        >>> folder = write_image_folder(tempfile.mkdtemp(), images[:40], labels[:40])
        >>> report = quality_report(folder)
        >>> report.summary["image_sizes"], report.summary["formats"]
        ({'8x8': 40}, {'PNG L': 40})
    """
    limits = _check_limits(
        near_duplicate_distance=near_duplicate_distance,
        near_duplicate_difference=near_duplicate_difference, outlier_z=outlier_z,
        min_class_fraction=min_class_fraction, confidence=confidence,
    )  # fmt: skip
    if network is not None and not isinstance(network, torch.nn.Module):
        raise OptionError(
            "quality_report: `network` must be a torch.nn.Module (a classifier) or None. "
            f"Received: {type(network).__name__}."
        )
    items, splits = scan(data)
    findings = run_checks(items, limits)
    if network is not None:
        findings.extend(_disagreements(items, splits, network, confidence))
    return QualityReport(findings, _summary(items), items)
