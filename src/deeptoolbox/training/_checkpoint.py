"""Checkpoint files: one zip per checkpoint, written to a temporary file and renamed into place.

Members: ``network.json`` (architecture, for a Network), ``weights.safetensors`` (parameters
and buffers), ``best.safetensors`` (best-validation weights, when tracked) and ``state.pt``:
``{"format_version": 2, "loop": LoopState.state_dict(), "optimizer": ..., "scaler": ...,
"scheduler": ... (a user's scheduler), "options": TrainingOptions.to_dict()}``, plain
tensors, numbers and strings read back with ``torch.load(weights_only=True)``. No pickle is
needed for the network.

Format 1 (deeptoolbox before the LoopState, no ``format_version``: the counters, ``best`` as
a list and the rest side by side) is read and converted; a newer format is refused with an
error naming its version.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from deeptoolbox._atomic import atomic_open
from deeptoolbox._limits import ReadLimits, read_limits
from deeptoolbox.errors import OptionError, ResourceLimitError
from deeptoolbox.network._network import Network
from deeptoolbox.training._state import rng_state, set_rng_state

__all__ = [
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "checkpoint_name",
    "rng_state",
    "set_rng_state",
]

FORMAT_VERSION = 2
_PATTERN = re.compile(r"checkpoint-epoch(\d+)-iteration(\d+)(\.zip)?$")  # folder: sharded


def _tensors(state: dict[str, torch.Tensor]) -> bytes:
    plain = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
    return safetensors.torch.save(plain)


def checkpoint_name(epoch: int, iteration: int) -> str:
    """The file name of the checkpoint of ``iteration`` in (1-based) ``epoch``.

    Example:
        >>> checkpoint_name(2, 6)
        'checkpoint-epoch0002-iteration0000006.zip'
    """
    return f"checkpoint-epoch{epoch:04d}-iteration{iteration:07d}.zip"


def save_checkpoint(
    folder: str | os.PathLike,
    net: torch.nn.Module,
    loop: dict[str, Any],
    training: dict[str, Any],
    best: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint zip in ``folder`` atomically; returns its path.

    ``loop`` is a ``LoopState.state_dict()``; ``training`` holds the ``optimizer``,
    ``scaler``, ``options`` and (optionally) ``scheduler`` states.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shown = loop["epoch"] + (1 if loop["position"] else 0)  # the epoch in progress or just done
    path = folder / checkpoint_name(shown, loop["iteration"])
    members = {"weights.safetensors": _tensors(net.state_dict())}
    if isinstance(net, Network):
        members["network.json"] = net.to_json().encode()
    if best is not None:
        members["best.safetensors"] = _tensors(best)
    buffer = io.BytesIO()
    torch.save({"format_version": FORMAT_VERSION, "loop": loop, **training}, buffer)
    members["state.pt"] = buffer.getvalue()
    with atomic_open(path, "wb") as file:
        with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        file.flush()
        os.fsync(file.fileno())
    return path


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``folder`` (by iteration), or None: a zip, or a
    sharded checkpoint folder (strategy="fsdp")."""
    found = [(int(m.group(2)), p) for p in Path(folder).glob("checkpoint-*")
             if (m := _PATTERN.search(p.name))]  # fmt: skip
    return max(found)[1] if found else None


def _from_format_1(state: dict[str, Any]) -> dict[str, Any]:
    """A format-1 ``state.pt`` (no version; ``best`` a list) in the format-2 layout."""
    best_loss, best_epoch, best_iteration, patience = state["best"]
    prefix = "validation_"
    loop = {
        "epoch": state["epoch"], "iteration": state["iteration"], "position": state["position"],
        "seed": state["seed"], "elapsed": state["elapsed"], "best_loss": best_loss,
        "best_epoch": best_epoch, "best_iteration": best_iteration,
        "best_validation": dict(state.get("best_validation", {})), "patience": patience,
        "validation": {k[len(prefix):]: v for k, v in state["last_validation"].items()
                       if k.startswith(prefix)},
        "validated_iteration": None, "epoch_rng": state["epoch_rng"],
        "history": state["history"], "rng": state["rng"],
    }  # fmt: skip
    training = {k: state[k] for k in ("optimizer", "scaler", "options") if k in state}
    if "scheduler" in state:
        training["scheduler"] = state["scheduler"]
    return {"format_version": 1, "loop": loop, **training}


def _upgraded(state: Any, path: Path) -> dict[str, Any]:
    """The ``state.pt`` contents in the current layout, whatever format wrote them."""
    if not isinstance(state, dict):
        raise OptionError(
            f"TrainingOptions: `resume_from` file {str(path)!r} is not a deeptoolbox checkpoint "
            f"(its state.pt holds a {type(state).__name__})."
        )
    version = state.get("format_version")
    if version is None and {"iteration", "best", "history"} <= set(state):
        return _from_format_1(state)
    if version == FORMAT_VERSION:
        return state
    raise OptionError(
        f"TrainingOptions: `resume_from` file {str(path)!r} has checkpoint format version "
        f"{version!r}; this deeptoolbox reads versions 1 to {FORMAT_VERSION}. Hint: resume it "
        "with the deeptoolbox version that wrote it (a newer one), or start a new run."
    )


def load_checkpoint(path: str | os.PathLike, *, limits: ReadLimits | None = None) -> dict[str, Any]:
    """Read a checkpoint (a file, or a folder: its latest one) without unpickling code.

    Sizes the file declares are checked against ``limits`` (:class:`deeptoolbox.ReadLimits`,
    None for the defaults) before anything is allocated.

    A sharded checkpoint folder (strategy="fsdp") is read whole: its weights gathered into
    full tensors, its optimizer state keyed by parameter name.

    Returns a dict with ``weights``, ``best`` (or None), ``network_json`` (or None),
    ``state`` (the loop state: ``LoopState.state_dict()``), ``optimizer``, ``scaler``,
    ``scheduler`` (or None), ``options``, ``format_version`` (of the file) and ``path``.
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
    if (path / ".metadata").is_file():
        return _load_sharded_whole(path)
    if not path.is_file():
        raise OptionError(
            f"TrainingOptions: `resume_from` must be a checkpoint file or a folder of them. "
            f"Received: {str(path)!r}, which does not exist."
        )
    limits = read_limits(limits, "load_checkpoint")
    where = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            wanted = ["weights.safetensors", "state.pt"]
            wanted += [n for n in ("best.safetensors", "network.json") if n in archive.namelist()]
            members = limits.read_zip_members(archive, wanted, where)
        for name in ("weights.safetensors", "best.safetensors"):
            if name in members:
                limits.check_safetensors(members[name], f"{where}: {name}")
        weights = safetensors.torch.load(members["weights.safetensors"])
        best = (
            safetensors.torch.load(members["best.safetensors"])
            if "best.safetensors" in members else None
        )  # fmt: skip
        text = None
        if "network.json" in members:
            limits.load_json(members["network.json"], f"{where}: network.json")
            text = members["network.json"].decode()
        state = torch.load(io.BytesIO(members["state.pt"]), weights_only=True)
    except (zipfile.BadZipFile, KeyError, RuntimeError, OSError, ValueError, EOFError,
            pickle.UnpicklingError) as err:  # fmt: skip
        # weights_only=True refuses anything but tensors and plain containers; torch's own
        # advice to retry without it would run the file's code, so it is not repeated here
        if isinstance(err, ResourceLimitError):
            raise
        reason = (
            "state.pt holds objects other than tensors and plain values; it was not loaded"
            if isinstance(err, pickle.UnpicklingError) else str(err)
        )  # fmt: skip
        raise OptionError(
            f"TrainingOptions: `resume_from` file {str(path)!r} is not a complete deeptoolbox "
            f"checkpoint ({reason})."
        ) from err
    state = _upgraded(state, path)
    return {
        "weights": weights, "best": best, "network_json": text, "state": state["loop"],
        "optimizer": state["optimizer"], "scaler": state["scaler"],
        "scheduler": state.get("scheduler"), "options": state.get("options", {}),
        "format_version": state["format_version"], "path": path,
    }  # fmt: skip


def _load_sharded_whole(path: Path) -> dict[str, Any]:
    """A sharded (DCP) checkpoint folder read into full tensors, in one process."""
    import tempfile
    import warnings

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    try:
        state = torch.load(path / "state.pt", weights_only=True)
        with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no process group": intended
            whole = Path(folder) / "whole.pt"
            dcp_to_torch_save(path, whole)
            tensors = torch.load(whole, weights_only=True)
    except (KeyError, RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise OptionError(
            f"TrainingOptions: `resume_from` folder {str(path)!r} is not a complete sharded "
            f"deeptoolbox checkpoint ({err})."
        ) from err
    network = path / "network.json"
    return {
        "weights": tensors["model"], "best": tensors.get("best"),
        "network_json": network.read_text() if network.is_file() else None,
        "state": state["loop"], "optimizer": tensors["optimizer"], "scaler": state["scaler"],
        "scheduler": state.get("scheduler"), "options": state.get("options", {}),
        "format_version": state["format_version"], "path": path,
    }  # fmt: skip
