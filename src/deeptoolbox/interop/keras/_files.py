"""Read Keras model files without Keras: ``.keras`` (Keras 3 zip) and legacy HDF5 ``.h5``.

A ``.keras`` file is a zip holding ``config.json`` (the architecture), ``metadata.json`` and
``model.weights.h5``, where each layer's variables live under ``layers/<key>/vars/<i>`` and
``<key>`` is the snake_case class name made unique in layer order (``dense``, ``dense_1``).
A legacy ``.h5`` file holds the architecture as the ``model_config`` attribute and the weights
under ``model_weights/<layer name>``, listed in order by the ``weight_names`` attribute.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deeptoolbox import _hdf5
from deeptoolbox._limits import ReadLimits, read_limits
from deeptoolbox.errors import ModelImportError, ResourceLimitError

if TYPE_CHECKING:
    import h5py

_CHILD_ORDER = {
    "Bidirectional": ["forward_layer", "backward_layer"],
    "MultiHeadAttention": ["query_dense", "key_dense", "value_dense", "output_dense"],
}


def snake_case(name: str) -> str:
    """Keras's file key for a class name.

    Example:
        >>> snake_case("MultiHeadAttention"), snake_case("Conv2D")
        ('multi_head_attention', 'conv2d')
    """
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def file_keys(class_names: list[str]) -> list[str]:
    """The ``layers/<key>`` group of each layer in a ``.keras`` weights file, in layer order.

    Example:
        >>> file_keys(["Dense", "ReLU", "Dense"])
        ['dense', 're_lu', 'dense_1']
    """
    used: dict[str, int] = {}
    keys = []
    for class_name in class_names:
        key = snake_case(class_name)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        keys.append(key)
    return keys


def _collect(group: h5py.Group, class_name: str, read: Callable) -> list[np.ndarray]:
    arrays: list[np.ndarray] = []
    if "vars" in group:
        variables = group["vars"]
        arrays += [read(variables[k]) for k in sorted(variables, key=int)]
    import h5py

    children = [k for k in group if k != "vars" and isinstance(group[k], h5py.Group)]
    order = _CHILD_ORDER.get(class_name, [])
    children.sort(key=lambda k: (order.index(k) if k in order else len(order), k))
    for child in children:
        arrays += _collect(group[child], "", read)
    return arrays


class KerasFile:
    """The architecture and weights of a Keras model file.

    Example:
        >>> try:
        ...     KerasFile("missing.keras")
        ... except ModelImportError as err:
        ...     "does not exist" in str(err)
        True
    """

    def __init__(self, path: str | Path, limits: ReadLimits | None = None) -> None:
        self.path = Path(path)
        self.limits = read_limits(limits, "import_keras")
        self.metadata: dict[str, Any] = {}  # a .keras file's metadata.json
        if not self.path.is_file():
            raise ModelImportError(f"import_keras: the file '{self.path}' does not exist.")
        self._h5: Any = None
        import h5py  # only needed once a Keras file is read

        try:
            if zipfile.is_zipfile(self.path):
                self._read_keras()
            elif h5py.is_hdf5(self.path):
                self._read_h5()
            else:
                raise ModelImportError(
                    f"import_keras: '{self.path}' is neither a Keras 3 '.keras' file (a zip) nor "
                    "a legacy Keras HDF5 '.h5' file; it may be truncated or of another format."
                )
        except (ModelImportError, ResourceLimitError):
            raise
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise ModelImportError(
                f"import_keras: '{self.path}' cannot be read as a Keras model file "
                f"(truncated or corrupt?): {type(err).__name__}: {err}"
            ) from err
        if not isinstance(self.model, dict) or "class_name" not in self.model:
            raise ModelImportError(
                f"import_keras: '{self.path}' holds no Keras model architecture (no class_name)."
            )

    def _read_keras(self) -> None:
        with zipfile.ZipFile(self.path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                raise ModelImportError(
                    f"import_keras: '{self.path}' is a zip but not a Keras 3 model file: it lacks "
                    f"{', '.join(sorted(missing))}."
                )
            wanted = ["config.json", "model.weights.h5"]
            wanted += ["metadata.json"] if "metadata.json" in names else []
            members = self.limits.read_zip_members(archive, wanted, str(self.path))
        self.model = self.limits.load_json(members["config.json"], f"{self.path}: config.json")
        weights = members["model.weights.h5"]
        if "metadata.json" in members:
            self.metadata = self.limits.load_json(
                members["metadata.json"], f"{self.path}: metadata.json"
            )
        import h5py

        self._h5 = h5py.File(io.BytesIO(weights), "r")
        self.legacy = False

    def _read_h5(self) -> None:
        import h5py

        _hdf5.probe_hdf5(self.path, "import_keras", ModelImportError)
        self._h5 = h5py.File(self.path, "r")
        if "model_config" not in self._h5.attrs:
            raise ModelImportError(
                f"import_keras: '{self.path}' is an HDF5 file without a 'model_config' attribute: "
                "a weights-only file, not a whole Keras model. Save the model with model.save()."
            )
        text = self._h5.attrs["model_config"]
        self.model = self.limits.load_json(text, f"{self.path}: model_config")
        self.legacy = True

    def weights(self, name: str, key: str, class_name: str) -> list[np.ndarray]:
        """The variables of one layer, in Keras's order (kernel, recurrent kernel, bias...)."""
        if self.legacy:
            root = self._h5.get("model_weights", self._h5)
            if name not in root:
                return []
            group = root[name]
            listed = group.attrs.get("weight_names", [])
            return [self._array(group[_text(n)]) for n in listed]
        layers = self._h5.get("layers")
        if layers is None or key not in layers:
            return []
        return _collect(layers[key], class_name, self._array)

    def nested_weights(self, name: str, key: str, layers: list[dict]) -> list[list[np.ndarray]]:
        """The variables of each layer of a Sequential model nested as one layer ``name``."""
        names = [str(x.get("config", {}).get("name") or x.get("name")) for x in layers]
        if self.legacy:  # one list for the whole nested model: "outer/inner/variable"
            root = self._h5.get("model_weights", self._h5)
            group = root.get(name)
            listed = [_text(n) for n in group.attrs.get("weight_names", [])] if group else []
            found: dict[str, list[np.ndarray]] = {n: [] for n in names}
            for entry in listed:
                parts = entry.split("/")
                inner = parts[1] if len(parts) > 2 and parts[0] == name else parts[0]
                if inner in found:
                    found[inner].append(self._array(group[entry]))
            return [found[n] for n in names]
        layers_group = self._h5.get("layers")
        if layers_group is None or key not in layers_group or "layers" not in layers_group[key]:
            return [[] for _ in layers]
        inner = layers_group[key]["layers"]
        keys = file_keys([str(x.get("class_name", "")) for x in layers])
        return [
            _collect(inner[k], str(x.get("class_name", "")), self._array) if k in inner else []
            for x, k in zip(layers, keys, strict=True)
        ]

    def _array(self, dataset: h5py.Dataset) -> np.ndarray:
        """An HDF5 dataset's values, once its declared size is checked against the limits."""
        self.limits.check_stored_tensor(
            str(self.path), dataset.name, dataset.shape or (), dataset.dtype.itemsize,
            dataset.id.get_storage_size(),
        )  # fmt: skip
        return np.asarray(dataset)

    def close(self) -> None:
        """Close the HDF5 weights."""
        if self._h5 is not None:
            self._h5.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
