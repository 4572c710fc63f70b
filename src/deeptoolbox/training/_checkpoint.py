"""Checkpoint files: one zip per checkpoint, written to a temporary file and renamed into place.

Members: ``network.json`` (architecture, for a Network), ``weights.safetensors`` (parameters
and buffers), ``best.safetensors`` (best-validation weights, when tracked) and ``state.pt``
(optimizer, scaler, counters, RNG states, history: plain tensors, numbers and strings, read
back with ``torch.load(weights_only=True)``). No pickle is needed for the network.
"""

from __future__ import annotations

import io
import os
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from deeptoolbox._atomic import atomic_open
from deeptoolbox.errors import OptionError
from deeptoolbox.network._network import Network

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "rng_state", "set_rng_state"]

_PATTERN = re.compile(r"checkpoint-epoch(\d+)-iteration(\d+)\.zip$")


def rng_state() -> dict[str, Any]:
    """Every random generator's state as plain values (safe for weights_only loading)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tensors(state: dict[str, torch.Tensor]) -> bytes:
    plain = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
    return safetensors.torch.save(plain)


def checkpoint_name(epoch: int, iteration: int) -> str:
    return f"checkpoint-epoch{epoch:04d}-iteration{iteration:07d}.zip"


def save_checkpoint(
    folder: str | os.PathLike,
    net: torch.nn.Module,
    state: dict[str, Any],
    best: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint zip in ``folder`` atomically; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shown = state["epoch"] + (1 if state["position"] else 0)  # the epoch in progress or just done
    path = folder / checkpoint_name(shown, state["iteration"])
    members = {"weights.safetensors": _tensors(net.state_dict())}
    if isinstance(net, Network):
        members["network.json"] = net.to_json().encode()
    if best is not None:
        members["best.safetensors"] = _tensors(best)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    members["state.pt"] = buffer.getvalue()
    with atomic_open(path, "wb") as file:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        file.flush()
        os.fsync(file.fileno())
    return path


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``folder`` (by iteration), or None."""
    found = [(int(m.group(2)), p) for p in Path(folder).glob("checkpoint-*.zip")
             if (m := _PATTERN.search(p.name))]  # fmt: skip
    return max(found)[1] if found else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint (a file, or a folder: its latest one) without unpickling code.

    Returns a dict with ``weights``, ``best`` (or None), ``network_json`` (or None),
    ``state`` and ``path``.
    """
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise OptionError(
                f"TrainingOptions: `resume_from` folder {str(path)!r} holds no checkpoint files "
                "(checkpoint-epochNNNN-iterationNNNNNNN.zip)."
            )
        path = latest
    if not path.is_file():
        raise OptionError(
            f"TrainingOptions: `resume_from` must be a checkpoint file or a folder of them. "
            f"Received: {str(path)!r}, which does not exist."
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            weights = safetensors.torch.load(archive.read("weights.safetensors"))
            best = (
                safetensors.torch.load(archive.read("best.safetensors"))
                if "best.safetensors" in names else None
            )  # fmt: skip
            text = archive.read("network.json").decode() if "network.json" in names else None
            state = torch.load(io.BytesIO(archive.read("state.pt")), weights_only=True)
    except (zipfile.BadZipFile, KeyError, RuntimeError, OSError) as err:
        raise OptionError(
            f"TrainingOptions: `resume_from` file {str(path)!r} is not a complete deeptoolbox "
            f"checkpoint ({err})."
        ) from err
    return {"weights": weights, "best": best, "network_json": text, "state": state, "path": path}
