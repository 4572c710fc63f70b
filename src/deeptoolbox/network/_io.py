"""save() and load(): a network as network.json + weights.safetensors + metadata.json.

The three files live in a folder, or in a ``.zip`` holding the same three members. No pickle
is ever read. Saving writes to a temporary file or folder next to the target and renames it
into place, so a save that fails midway leaves any earlier save intact.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from deeptoolbox._atomic import atomic_folder, atomic_open
from deeptoolbox._limits import ReadLimits, read_limits
from deeptoolbox._version import __version__
from deeptoolbox.errors import NetworkFileError, OptionError, ResourceLimitError
from deeptoolbox.layers._input import InputLayer
from deeptoolbox.network._network import Network
from deeptoolbox.network._serialize import architecture, from_architecture
from deeptoolbox.network._state import get_state, iterate_states, set_state, stateful_layers

NETWORK_FILE = "network.json"
WEIGHTS_FILE = "weights.safetensors"
METADATA_FILE = "metadata.json"
MEMBERS = (NETWORK_FILE, WEIGHTS_FILE, METADATA_FILE)
STATE_PREFIX = "state/"  # weights.safetensors keys of a saved recurrent state: state/LAYER/PART


def _metadata(net: Network) -> dict[str, Any]:
    inputs = []
    for name in net.input_names:
        layer: InputLayer = net.layer(name)  # type: ignore[assignment]
        inputs.append({
            "name": name,
            "type": type(layer).__name__,
            "size": list(layer.shape),
            "normalization": layer.normalization,
        })  # fmt: skip
    return {
        "format": "deeptoolbox.metadata",
        "deeptoolbox_version": __version__,
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "classes": net.classes,
        "inputs": inputs,
        "outputs": [{"name": n, "size": list(net.output_shape(n) or [])} for n in net.output_names],
        "user": net.metadata,
    }


def _tied(net: Network) -> dict[str, str]:
    """State-dict keys whose tensor is the same object as an earlier key's (shared weights)."""
    first: dict[int, str] = {}
    tied: dict[str, str] = {}
    for key, value in net.state_dict(keep_vars=True).items():
        if id(value) in first:
            tied[key] = first[id(value)]
        else:
            first[id(value)] = key
    return tied


def _weights(
    net: Network, tied: dict[str, str], plain: dict[str, torch.Tensor], include_state: bool
) -> bytes:
    replaced = tuple(
        f"{owner}.parametrizations.{tensor}."
        for owner, _, tensor in (key.rpartition(".") for key in plain)
    )
    tensors = {
        k: v.detach().cpu().contiguous()
        for k, v in net.state_dict().items()
        if k not in tied and not k.startswith(replaced)
    }
    tensors |= {k: v.detach().cpu().contiguous() for k, v in plain.items()}
    metadata = {"format": "deeptoolbox.weights"}
    if include_state:
        for layer, part, tensor in iterate_states(get_state(net)):
            tensors[f"{STATE_PREFIX}{layer}/{part}"] = tensor.detach().cpu().contiguous()
        metadata["stateful"] = "true" if net.stateful else "false"
    return safetensors.torch.save(tensors, metadata=metadata)


def _serialize(net: Network, include_state: bool = False) -> dict[str, bytes]:
    if not isinstance(net, Network):
        raise OptionError(
            f"save expects a deeptoolbox Network. Received: {type(net).__name__}. Bring a plain "
            "module in first, e.g. Network([input_layer, module])."
        )
    try:
        user = json.dumps(_metadata(net), indent=2, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise OptionError(f"net.metadata must hold JSON values only: {err}") from err
    description = architecture(net)
    tied = _tied(net)
    recorded, plain = parametrizations(net)
    if tied:
        description["tied_weights"] = tied
    if recorded:
        description["parametrizations"] = recorded
    return {
        NETWORK_FILE: json.dumps(description, indent=2).encode(),
        WEIGHTS_FILE: _weights(net, tied, plain, include_state),
        METADATA_FILE: user.encode(),
    }


# -- parametrized weights (weight_norm, spectral_norm) ---------------------------------------------
_NEW_STYLE = {"_WeightNorm": ("weight_norm", ("dim",)),
              "_SpectralNorm": ("spectral_norm", ("n_power_iterations", "eps", "dim"))}  # fmt: skip
_HOOKS = {"WeightNorm": ("weight_norm_hook", ("dim",)),
          "SpectralNorm": ("spectral_norm_hook", ("n_power_iterations", "eps", "dim"))}  # fmt: skip


def parametrizations(net: Network) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The parametrizations to re-apply on load, and the effective weights of unknown ones.

    ``torch.nn.utils.parametrizations.weight_norm`` / ``spectral_norm`` (and the older
    hook-based ``torch.nn.utils.weight_norm`` / ``spectral_norm``) are recorded by name and
    options, with their own tensors in the weights file, so the loaded network trains as the
    saved one. Any other parametrization is saved as the tensor it computes, with a warning.

    Example:
        >>> from deeptoolbox import layers as L
        >>> net = Network([L.FeatureInput(3), L.Dense(2, name="fc")])
        >>> _ = torch.nn.utils.parametrizations.weight_norm(net.layer("fc"))
        >>> parametrizations(net)[0]
        [{'module': 'layers.fc', 'tensor': 'weight', 'kind': 'weight_norm', 'options': {'dim': 0}}]
    """
    from torch.nn.utils import parametrize

    recorded: list[dict[str, Any]] = []
    plain: dict[str, torch.Tensor] = {}
    for path, module in net.named_modules():
        for hook in module._forward_pre_hooks.values():
            kind, options = _HOOKS.get(type(hook).__name__, (None, ()))
            if kind is not None and type(hook).__module__.startswith("torch.nn.utils"):
                recorded.append(_record(path, hook.name, kind, hook, options))
        if not parametrize.is_parametrized(module):
            continue
        for tensor, chain in module.parametrizations.items():
            known = [_NEW_STYLE.get(type(p).__name__) for p in chain]
            if len(chain) == 1 and known[0] and type(chain[0]).__module__.startswith("torch.nn"):
                recorded.append(_record(path, tensor, *known[0][:1], chain[0], known[0][1]))
                continue
            plain[f"{path}.{tensor}"] = getattr(module, tensor).detach()
            warnings.warn(
                f"save: '{path}.{tensor}' is parametrized by "
                f"{', '.join(type(p).__name__ for p in chain)}, which cannot be written to "
                "network.json; its effective value is saved as a plain tensor (the loaded "
                "network computes the same outputs, without the parametrization).",
                UserWarning,
                stacklevel=4,
            )
    return recorded, plain


def _record(path: str, tensor: str, kind: str, source: Any, options: tuple) -> dict[str, Any]:
    values = {key: getattr(source, key) for key in options}
    return {"module": path, "tensor": tensor, "kind": kind, "options": values}


def _reapply(net: Network, recorded: Any, where: str) -> None:
    from torch.nn.utils import parametrizations as new_style

    functions = {
        "weight_norm": new_style.weight_norm,
        "spectral_norm": new_style.spectral_norm,
        "weight_norm_hook": torch.nn.utils.weight_norm,
        "spectral_norm_hook": torch.nn.utils.spectral_norm,
    }
    for entry in recorded or []:
        try:
            module = net.get_submodule(entry["module"])
            function = functions[entry["kind"]]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # the hook-based forms
                function(module, entry["tensor"], **entry.get("options", {}))
        except (KeyError, AttributeError, TypeError, ValueError, RuntimeError) as err:
            raise NetworkFileError(
                f"{where}: the parametrization {entry!r} cannot be re-applied ({err}). Known "
                f"kinds: {', '.join(functions)}."
            ) from err


def _retie(net: Network, tied: Any, where: str) -> None:
    for key, source in (tied or {}).items():
        try:
            owner, _, name = key.rpartition(".")
            source_owner, _, source_name = source.rpartition(".")
            value = getattr(net.get_submodule(source_owner), source_name)
            setattr(net.get_submodule(owner), name, value)
        except (AttributeError, TypeError, KeyError) as err:
            raise NetworkFileError(
                f"{where}: the tied weight {key!r} -> {source!r} names no tensor of the "
                f"network ({err})."
            ) from err


def _is_saved_network(path: Path) -> bool:
    if path.is_dir():
        return not any(path.iterdir()) or (path / NETWORK_FILE).is_file()
    try:
        with zipfile.ZipFile(path) as archive:
            return NETWORK_FILE in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def save(net: Network, path: str | os.PathLike, *, include_state: bool = False) -> Path:
    """Save ``net`` to a folder, or to a zip file when ``path`` ends in ``.zip``.

    Writes network.json (architecture), weights.safetensors and metadata.json (classes,
    input sizes and normalization, versions, creation time, ``net.metadata``). Replaces an
    earlier saved network at ``path`` only once the new one is completely written; refuses
    to overwrite anything that is not a saved network. With ``include_state=True`` the
    recurrent state (``net.state``) and stateful mode are saved too, and :func:`load`
    restores them; otherwise a loaded network starts from zeros.

    Example:
        >>> import tempfile, os
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(1)], classes=None)
        >>> folder = tempfile.mkdtemp()
        >>> save(net, os.path.join(folder, "net.zip")).name
        'net.zip'
    """
    path = Path(path)
    if path.exists() and not _is_saved_network(path):
        raise NetworkFileError(
            f"Not overwriting {path}: it exists and is not a saved deeptoolbox network. "
            "Choose another path or remove it first."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = _serialize(net, include_state)
    if path.suffix.lower() == ".zip":
        _write_zip(path, payload)
    else:
        _write_folder(path, payload)
    return path


def _write_zip(path: Path, payload: dict[str, bytes]) -> None:
    with (
        atomic_open(path, "wb") as raw,
        zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for member, data in payload.items():
            archive.writestr(member, data)


def _write_folder(path: Path, payload: dict[str, bytes]) -> None:
    with atomic_folder(path) as temporary:
        for member, data in payload.items():
            (temporary / member).write_bytes(data)


def _read_members(path: Path, limits: ReadLimits) -> dict[str, bytes]:
    if not path.exists():
        raise NetworkFileError(f"No saved network at {path}: the path does not exist.")
    if path.is_dir():
        missing = [m for m in MEMBERS if not (path / m).is_file()]
        if missing:
            raise NetworkFileError(
                f"{path} is not a complete saved network: missing {', '.join(missing)}."
            )
        limits.check(str(path), "the size of the saved files (bytes)", "max_uncompressed_bytes",
                     sum((path / m).stat().st_size for m in MEMBERS))  # fmt: skip
        return {m: (path / m).read_bytes() for m in MEMBERS}
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [m for m in MEMBERS if m not in names]
            if missing:
                raise NetworkFileError(
                    f"{path} is not a complete saved network: the zip lacks {', '.join(missing)}."
                )
            return limits.read_zip_members(archive, MEMBERS, str(path))
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError,
            RuntimeError, ValueError) as err:  # fmt: skip
        if isinstance(err, ResourceLimitError):
            raise
        # damaged offsets give OSError (invalid seek), unknown methods NotImplementedError,
        # encrypted members RuntimeError
        raise NetworkFileError(
            f"{path} is not a readable network zip (corrupted or truncated): {err}"
        ) from err


def _read_json(path: Path, member: str, data: bytes, limits: ReadLimits) -> Any:
    try:
        return limits.load_json(data, f"{path}: {member}")
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NetworkFileError(f"{path}: {member} is corrupted or truncated ({err}).") from err


def load(path: str | os.PathLike, *, limits: ReadLimits | None = None) -> Network:
    """Load a network saved by :func:`save` (folder or zip). Never unpickles anything.

    What the file declares is checked against ``limits`` (a :class:`deeptoolbox.ReadLimits`;
    None for the defaults) before anything is allocated: zip size and compression ratio,
    JSON size and depth, layer count, tensor sizes (docs/security.md).

    The network comes back in evaluation mode, as :func:`deeptoolbox.train` returns it
    (dropout off, batch normalization on its running statistics), so that ``net(x)`` predicts;
    ``train()`` switches modes itself, a hand-written loop calls ``net.train()`` first.

    Example:
        >>> import tempfile, os, torch
        >>> from deeptoolbox import Network, layers as L
        >>> net = Network([L.FeatureInput(2), L.Dense(1)])
        >>> target = save(net, os.path.join(tempfile.mkdtemp(), "net"))
        >>> bool(torch.equal(load(target)(torch.ones(1, 2)), net(torch.ones(1, 2))))
        True
    """
    path = Path(path)
    limits = read_limits(limits, "load")
    members = _read_members(path, limits)
    description = _read_json(path, NETWORK_FILE, members[NETWORK_FILE], limits)
    if isinstance(description, dict) and isinstance(description.get("layers"), list):
        limits.check(f"{path}: {NETWORK_FILE}", "the number of layers", "max_nodes",
                     len(description["layers"]))  # fmt: skip
    _check_declared_weights(description, path, len(members[WEIGHTS_FILE]))
    net = from_architecture(description, Network, f"{path}: {NETWORK_FILE}")
    metadata = _read_json(path, METADATA_FILE, members[METADATA_FILE], limits)
    limits.check_safetensors(members[WEIGHTS_FILE], f"{path}: {WEIGHTS_FILE}")
    try:
        tensors = safetensors.torch.load(members[WEIGHTS_FILE])
    except Exception as err:  # safetensors raises its own error types for bad headers
        raise NetworkFileError(
            f"{path}: {WEIGHTS_FILE} is corrupted or truncated ({err})."
        ) from err
    saved_state = {k: tensors.pop(k) for k in list(tensors) if k.startswith(STATE_PREFIX)}
    extras = description if isinstance(description, dict) else {}
    _reapply(net, extras.get("parametrizations"), f"{path}: {NETWORK_FILE}")
    _retie(net, extras.get("tied_weights"), f"{path}: {NETWORK_FILE}")
    for key, source in (extras.get("tied_weights") or {}).items():
        if source in tensors:
            tensors[key] = tensors[source]
    _load_weights(net, tensors, path)
    if saved_state or _saved_mode(members[WEIGHTS_FILE]) is not None:
        _restore_state(net, saved_state, _saved_mode(members[WEIGHTS_FILE]), path)
    if isinstance(metadata, dict):
        user = metadata.get("user") or {}
        if not isinstance(user, dict):
            raise NetworkFileError(
                f"{path}: {METADATA_FILE} 'user' must be an object (net.metadata). Received: "
                f"{type(user).__name__}."
            )
        net.metadata = dict(user)
    return net.eval()


def _check_declared_weights(description: Any, path: Path, stored: int) -> None:
    """Refuse a network.json whose layers would need far more memory than weights.safetensors
    holds (a 1 KB file declaring Dense(10**9) would allocate gigabytes before the weights are
    compared). The layers are built once on the meta device, which allocates nothing."""
    try:
        with torch.device("meta"):
            probe = from_architecture(description, Network, f"{path}: {NETWORK_FILE}")
            declared = sum(t.numel() * t.element_size() for t in probe.state_dict().values())
    except Exception:  # noqa: BLE001 - the real build below reports what is wrong
        return
    if declared > 2 * stored + _WEIGHTS_SLACK:
        raise NetworkFileError(
            f"{path}: {NETWORK_FILE} declares layers with {declared:,} bytes of weights, but "
            f"{WEIGHTS_FILE} holds {stored:,}: the file is damaged or forged (nothing was "
            "allocated)."
        )


_WEIGHTS_SLACK = 64 * 2**20  # buffers a layer may create that are not saved


def _saved_mode(weights: bytes) -> bool | None:
    """The stateful mode saved with ``include_state=True`` (None when no state was saved)."""
    size = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + size].decode("utf-8"))
    mode = (header.get("__metadata__") or {}).get("stateful")
    return None if mode is None else mode == "true"


def _restore_state(
    net: Network, saved: dict[str, torch.Tensor], stateful: bool | None, path: Path
) -> None:
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in saved.items():
        layer, _, part = key[len(STATE_PREFIX) :].partition("/")
        state.setdefault(layer, {})[part] = tensor
    try:
        set_state(net, state)
    except OptionError as err:
        raise NetworkFileError(
            f"{path}: the recurrent state in {WEIGHTS_FILE} does not fit the network: {err}"
        ) from err
    if stateful is not None and stateful_layers(net):
        net.stateful = stateful


def _load_weights(net: Network, tensors: dict[str, torch.Tensor], path: Path) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(
        f"{k}: file {tuple(tensors[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in set(expected) & set(tensors)
        if tensors[k].shape != expected[k].shape
    )
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing weights: {', '.join(missing)}")
        if unexpected:
            details.append(f"weights for unknown parameters: {', '.join(unexpected)}")
        if wrong:
            details.append(f"size mismatches: {'; '.join(wrong)}")
        raise NetworkFileError(
            f"{path}: {WEIGHTS_FILE} does not match {NETWORK_FILE} ({'; '.join(details)})."
        )
    net.load_state_dict(tensors)
