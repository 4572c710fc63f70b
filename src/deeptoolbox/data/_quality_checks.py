"""The checks of the data-quality report, each a function of the scanned observations that
returns findings: unreadable files, exact and near duplicates, duplicates across splits,
conflicting labels, rare and missing classes, mixed sizes / channels / sample rates, blank
images, NaN and constant channels, outliers in simple statistics."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from deeptoolbox.data._quality_scan import Scanned

__all__ = ["Finding", "CHECKS", "run_checks", "QualityLimits"]

# every check the report runs, with the severity of its findings
CHECKS = {
    "unreadable": "error",
    "exact-duplicates": "warning",
    "near-duplicates": "warning",
    "split-leakage": "error",
    "conflicting-labels": "error",
    "class-imbalance": "warning",
    "missing-class": "warning",
    "mixed-sizes": "warning",
    "mixed-channels": "warning",
    "mixed-sample-rates": "warning",
    "blank-image": "warning",
    "nan-values": "error",
    "constant-channel": "warning",
    "outlier": "warning",
    "label-disagreement": "warning",
}


@dataclass(frozen=True)
class Finding:
    """One problem found: the ``check`` that found it (a key of ``CHECKS``), its ``severity``
    ("error" or "warning"), a ``message`` saying what is wrong, and the ``files`` (or
    ``#index`` names) involved.

    Example:
        >>> Finding("blank-image", "warning", "all-black image", ("a/black.png",)).files
        ('a/black.png',)
    """

    check: str
    severity: str
    message: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class QualityLimits:
    """Thresholds of the checks (see :func:`~deeptoolbox.data.quality_report`)."""

    near_duplicate_distance: int = 12
    near_duplicate_difference: float = 0.02
    outlier_z: float = 6.0
    min_class_fraction: float = 0.2


def _finding(check: str, message: str, items: list[Scanned]) -> Finding:
    return Finding(check, CHECKS[check], message, tuple(i.name for i in items))


def _unreadable(items: list[Scanned], limits: QualityLimits) -> list[Finding]:
    return [_finding("unreadable", i.error or "", [i]) for i in items if i.error is not None]


def _groups_by(items: list[Scanned], key) -> list[list[Scanned]]:
    groups: dict[Any, list[Scanned]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return [g for g in groups.values() if len(g) > 1]


def exact_groups(items: list[Scanned]) -> list[list[Scanned]]:
    """Observations with identical content (same pixels or samples), in groups."""
    return _groups_by([i for i in items if i.error is None and i.digest], lambda i: i.digest)


def _close(a: Scanned, b: Scanned, difference: float) -> bool:
    gap = np.abs(a.thumbnail.astype(np.int16) - b.thumbnail.astype(np.int16)).mean() / 255.0
    return bool(gap <= difference)


def near_groups(items: list[Scanned], distance: int, difference: float) -> list[list[Scanned]]:
    """Images whose perceptual hashes differ in at most ``distance`` of 64 bits and whose
    16 x 16 gray thumbnails differ by at most ``difference`` (mean absolute difference, in
    [0, 1]), content not identical, in groups (connected pairs)."""
    firsts = {}
    for item in items:
        if item.error is None and item.phash is not None:
            firsts.setdefault(item.digest, item)
    reps = list(firsts.values())
    if len(reps) < 2:
        return []
    hashes = np.array([r.phash for r in reps], dtype=np.uint64)
    parent = list(range(len(reps)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a in range(len(reps) - 1):
        differing = np.bitwise_xor(hashes[a + 1 :], hashes[a])
        bits = np.unpackbits(differing.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        for b in np.flatnonzero(bits <= distance) + a + 1:
            if _close(reps[a], reps[b], difference):
                parent[root(int(b))] = root(a)
    members: dict[int, list[Scanned]] = defaultdict(list)
    same = {d: [i for i in items if i.digest == d and i.error is None] for d in firsts}
    for k, rep in enumerate(reps):
        members[root(k)].extend(same[rep.digest])
    return [g for g in members.values() if len({i.digest for i in g}) > 1]


def _names(group: list[Scanned]) -> str:
    shown = ", ".join(i.name for i in group[:3])
    return shown + (f" and {len(group) - 3} more" if len(group) > 3 else "")


def _duplicates(items: list[Scanned], limits: QualityLimits) -> list[Finding]:
    findings = []
    for check, groups in (
        ("exact-duplicates", exact_groups(items)),
        (
            "near-duplicates",
            near_groups(items, limits.near_duplicate_distance, limits.near_duplicate_difference),
        ),
    ):
        what = "identical content" if check == "exact-duplicates" else "nearly the same image"
        for group in groups:
            findings.append(_finding(check, f"{len(group)} observations with {what}", group))
            splits = sorted({i.split for i in group})
            if len(splits) > 1:
                message = f"the same content is in splits {splits}: {_names(group)}"
                findings.append(_finding("split-leakage", message, group))
            labels = sorted({str(i.label) for i in group if i.label is not None})
            if len(labels) > 1:
                message = f"the same content is labelled {labels}: {_names(group)}"
                findings.append(_finding("conflicting-labels", message, group))
    return findings


def class_counts(items: list[Scanned]) -> dict[str, dict[Any, int]]:
    """Readable observations of each class, per split."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for item in items:
        if item.error is None and item.label is not None:
            counts[item.split][item.label] += 1
    return {split: dict(sorted(c.items(), key=lambda kv: str(kv[0]))) for split, c in
            counts.items()}  # fmt: skip


def _classes(items: list[Scanned], limits: QualityLimits) -> list[Finding]:
    total = Counter(i.label for i in items if i.error is None and i.label is not None)
    if len(total) < 2:
        return []
    largest = max(total.values())
    findings = []
    for label, count in sorted(total.items(), key=lambda kv: str(kv[0])):
        if count < limits.min_class_fraction * largest:
            members = [i for i in items if i.label == label and i.error is None]
            message = (
                f"class '{label}' has {count} observation(s), {count / largest:.0%} of the "
                f"largest class ({largest})"
            )
            findings.append(_finding("class-imbalance", message, members))
    per_split = class_counts(items)
    if len(per_split) > 1:
        for split, counts in per_split.items():
            for label in sorted(set(total) - set(counts), key=str):
                members = [i for i in items if i.label == label and i.error is None]
                message = f"class '{label}' has no observation in split '{split}'"
                findings.append(_finding("missing-class", message, members))
    return findings


def _minority(items: list[Scanned], key, check: str, what: str) -> list[Finding]:
    values = Counter(key(i) for i in items)
    if len(values) < 2:
        return []
    common, count = values.most_common(1)[0]
    others = [i for i in items if key(i) != common]
    table = ", ".join(f"{v}: {n}" for v, n in values.most_common())
    message = f"{what} differ ({table}); {count} of {len(items)} have {common}"
    return [_finding(check, message, others)]


def _mixed(items: list[Scanned], limits: QualityLimits) -> list[Finding]:
    readable = [i for i in items if i.error is None]
    images = [i for i in readable if i.kind == "image"]
    signals = [i for i in readable if i.kind == "signal"]
    rated = [i for i in signals if i.sample_rate is not None]
    return [
        *_minority(images, lambda i: i.shape[1:], "mixed-sizes", "image sizes (H, W)"),
        *_minority(images, lambda i: i.shape[0], "mixed-channels", "channel counts"),
        *_minority(signals, lambda i: i.shape[1], "mixed-channels", "channel counts"),
        *_minority(rated, lambda i: i.sample_rate, "mixed-sample-rates", "sample rates"),
    ]


def is_blank(item: Scanned) -> bool:
    """An image of one value (less than one grey level of spread)."""
    return item.kind == "image" and not item.nan_channels and item.std * 255.0 < 1.0


def _values(items: list[Scanned], limits: QualityLimits) -> list[Finding]:
    findings = []
    for item in items:
        if item.error is not None:
            continue
        if item.nan_channels:
            message = f"NaN or Inf values in channel(s) {item.nan_channels}"
            findings.append(_finding("nan-values", message, [item]))
        if is_blank(item):
            tone = "all-black" if item.mean < 0.02 else "all-white" if item.mean > 0.98 else ""
            message = f"{tone or 'constant'} image (every pixel {item.mean:.3f})"
            findings.append(_finding("blank-image", message, [item]))
        if item.constant_channels:
            message = f"constant channel(s) {item.constant_channels} (the same value throughout)"
            findings.append(_finding("constant-channel", message, [item]))
    return findings


def _robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median))  # the MAD, scaled to a std
    return np.zeros_like(values) if spread == 0 else (values - median) / spread


def _outliers(items: list[Scanned], limits: QualityLimits) -> list[Finding]:
    findings = []
    for kind, names in (("image", ("mean", "std")), ("signal", ("mean", "RMS"))):
        group = [i for i in items if i.error is None and i.kind == kind and not i.nan_channels
                 and not is_blank(i)]  # fmt: skip
        if len(group) < 10:
            continue
        columns = np.array([[i.mean, i.std] for i in group], dtype=np.float64)
        z = np.stack([_robust_z(columns[:, 0]), _robust_z(columns[:, 1])], axis=1)
        for k in np.flatnonzero(np.abs(z).max(axis=1) > limits.outlier_z):
            parts = [f"{names[c]} {columns[k, c]:.3g} (robust z {z[k, c]:+.1f})" for c in (0, 1)
                     if abs(z[k, c]) > limits.outlier_z]  # fmt: skip
            message = f"unusual {' and '.join(parts)} among {len(group)} {kind}s"
            findings.append(_finding("outlier", message, [group[k]]))
    return findings


def run_checks(items: list[Scanned], limits: QualityLimits) -> list[Finding]:
    """Every check over ``items``, findings in the order of ``CHECKS``."""
    findings = []
    for check in (_unreadable, _duplicates, _classes, _mixed, _values, _outliers):
        findings.extend(check(items, limits))
    order = list(CHECKS)
    return sorted(findings, key=lambda f: order.index(f.check))
