"""Variable-length sequences: padding collate, SequenceDatastore and SignalDatastore."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox._hdf5 import probe_hdf5
from deeptoolbox._limits import current_limits
from deeptoolbox.data import _files
from deeptoolbox.data._array import as_targets
from deeptoolbox.data._base import Datastore, default_collate
from deeptoolbox.data._matfile import check_mat_v5
from deeptoolbox.errors import DataError, OptionError, ResourceLimitError

__all__ = ["PaddedCollate", "SequenceDatastore", "SignalDatastore", "read_signal"]


class PaddedCollate:
    """Collate variable-length sequences (T_i, ...) into a padded dict batch.

    The batch is ``{"inputs": x, "targets": y, "lengths": (N,), "mask": (N, T) bool}``: x is
    (N, T, ...) and ``mask`` is True on real time steps. ``sequence_length`` is "longest"
    (pad to the longest in the batch), "shortest" (truncate to the shortest) or an int
    (pad or truncate to it). ``padding="right"`` pads and truncates at the end, "left" at the
    start (so the last step is real data: good for recurrent classification). With
    ``mask_as_input=True`` ``inputs`` is ``(x, mask)``, mask as float32 (N, T), for a
    network with a second (N, T) input (e.g. ``SelfAttention(has_padding_mask=True)``).
    ``step_targets=True`` pads per-step targets the same way with ``target_padding_value``.
    Observations ``(sequence, target_1, target_2, ...)`` (from ``combine``) give a tuple of
    targets, one per network output (per-sequence targets only).

    Example:
        >>> import torch
        >>> collate = PaddedCollate(padding="right")
        >>> batch = collate([torch.ones(3, 2), torch.ones(1, 2)])
        >>> batch["inputs"].shape, batch["lengths"].tolist(), batch["mask"][1].tolist()
        (torch.Size([2, 3, 2]), [3, 1], [True, False, False])
    """

    def __init__(
        self,
        sequence_length: str | int = "longest",
        *,
        padding: str = "right",
        padding_value: float = 0.0,
        mask_as_input: bool = False,
        step_targets: bool = False,
        target_padding_value: float | None = None,
    ) -> None:
        valid_length = sequence_length in ("longest", "shortest") or (
            isinstance(sequence_length, int)
            and not isinstance(sequence_length, bool)
            and sequence_length >= 1
        )
        if not valid_length:
            raise OptionError(
                "`sequence_length` must be 'longest', 'shortest' or a positive int. "
                f"Received: sequence_length={sequence_length!r}."
            )
        if padding not in ("right", "left"):
            raise OptionError(
                f"`padding` must be 'right' or 'left'. Received: padding={padding!r}."
            )
        self.sequence_length = sequence_length
        self.padding = padding
        self.padding_value = padding_value
        self.mask_as_input = bool(mask_as_input)
        self.step_targets = bool(step_targets)
        self.target_padding_value = target_padding_value

    def _length(self, lengths: list[int]) -> int:
        if self.sequence_length == "longest":
            return max(lengths)
        if self.sequence_length == "shortest":
            return min(lengths)
        return int(self.sequence_length)

    def pad(self, seqs: list[torch.Tensor], length: int, value: float) -> torch.Tensor:
        """Stack ``seqs`` into (N, length, ...), padding/truncating on ``self.padding``."""
        first = seqs[0]
        out = torch.full((len(seqs), length, *first.shape[1:]), value, dtype=first.dtype)
        for i, seq in enumerate(seqs):
            keep = min(len(seq), length)
            if self.padding == "right":
                out[i, :keep] = seq[:keep]
            elif keep:
                out[i, length - keep :] = seq[len(seq) - keep :]
        return out

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        pairs = isinstance(items[0], tuple)
        if pairs and len(items[0]) > 2 and self.step_targets:
            raise DataError(
                "a padded sequence batch with per-step targets takes observations (sequence,) "
                f"or (sequence, target); received tuples of {len(items[0])} elements. Combine "
                "at most one per-step target."
            )
        seqs = [it[0] if pairs else it for it in items]
        shapes = {tuple(s.shape[1:]) for s in seqs}
        if len(shapes) != 1:
            raise DataError(
                f"sequences in one batch have different channel sizes: {sorted(shapes)}."
            )
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
        length = self._length(lengths.tolist())
        x = self.pad(seqs, length, self.padding_value)
        kept = lengths.clamp(max=length)
        steps = torch.arange(length)
        if self.padding == "right":
            mask = steps[None, :] < kept[:, None]
        else:
            mask = steps[None, :] >= (length - kept)[:, None]
        targets = None
        if pairs:
            ys = [it[-1] for it in items]
            if self.step_targets:
                fill = self.target_padding_value
                if fill is None:
                    fill = -100 if not ys[0].is_floating_point() else 0.0
                targets = self.pad(ys, length, fill)
            elif len(items[0]) > 2:  # several targets, one per network output
                targets = tuple(default_collate([it[k] for it in items])
                                for k in range(1, len(items[0])))  # fmt: skip
            else:
                targets = default_collate(ys)
        inputs = (x, mask.to(torch.float32)) if self.mask_as_input else x
        return {"inputs": inputs, "targets": targets, "lengths": kept, "mask": mask}


def _as_sequence(index: int, value: Any) -> torch.Tensor:
    tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))
    if tensor.dim() == 0:
        raise DataError(
            f"SequenceDatastore: sequence {index} is a scalar; expected (T, C) or (T,)."
        )
    if tensor.is_floating_point():
        tensor = tensor.to(torch.float32)
        if tensor.dim() == 1:
            tensor = tensor.unsqueeze(1)
    return tensor


def _step_targets(values: Sequence[Any], lengths: list[int], classes: Any) -> tuple[list, Any]:
    if len(values) != len(lengths):
        raise DataError(
            f"SequenceDatastore: {len(lengths)} sequences but {len(values)} per-step targets."
        )
    arrays = [np.asarray(v) for v in values]
    for i, (a, n) in enumerate(zip(arrays, lengths, strict=True)):
        if len(a) != n:
            raise DataError(
                f"SequenceDatastore: sequence {i} has {n} time steps but its targets have "
                f"{len(a)}. Per-step targets need one value per time step."
            )
    if arrays[0].dtype.kind in "USO":
        flat = np.concatenate([a.astype(str) for a in arrays])
        found = _files.check_classes("SequenceDatastore", flat, classes)
        return [torch.from_numpy(_files.encode(a.astype(str), found)) for a in arrays], found
    return [_as_sequence(i, a) for i, a in enumerate(arrays)], None


class _PaddedDatastore(Datastore):
    def _set_padding(self, **options: Any) -> None:
        self.collate_fn = PaddedCollate(**options)


class SequenceDatastore(_PaddedDatastore):
    """Variable-length sequences in memory; batches are padded dicts (see PaddedCollate).

    Args:
        sequences: a list of (T_i, C) or (T_i,) arrays, or one (N, T, C) array. Float
            (T,) sequences become (T, 1); integer (T,) sequences (token ids) stay (T,).
        targets: None; one label per sequence (strings or ints: classification); a
            numeric (N, ...) array (regression); or a list of per-step arrays, one per
            sequence (sequence-to-sequence), padded like the inputs.
        classes: the class order (default: sorted labels).
        sequence_length, padding, padding_value, mask_as_input, target_padding_value: how
            batches are padded; see :class:`PaddedCollate`.

    Example:
        >>> seqs = [np.random.rand(t, 2) for t in (5, 3, 4)]
        >>> ds = SequenceDatastore(seqs, ["up", "down", "up"], sequence_length="longest")
        >>> batch = ds.readall()
        >>> batch["inputs"].shape, batch["lengths"].tolist(), batch["targets"].tolist()
        (torch.Size([3, 5, 2]), [5, 3, 4], [1, 0, 1])
    """

    def __init__(
        self,
        sequences: Sequence[Any] | np.ndarray | torch.Tensor,
        targets: Any = None,
        *,
        classes: Sequence[Any] | None = None,
        sequence_length: str | int = "longest",
        padding: str = "right",
        padding_value: float = 0.0,
        mask_as_input: bool = False,
        target_padding_value: float | None = None,
    ) -> None:
        self._sequences = [_as_sequence(i, s) for i, s in enumerate(sequences)]
        shapes = {tuple(s.shape[1:]) for s in self._sequences}
        if len(shapes) > 1:
            raise DataError(
                f"SequenceDatastore: sequences have different channel sizes {sorted(shapes)}; "
                "every sequence must be (T_i, C) with the same C."
            )
        step = isinstance(targets, list | tuple) and len(targets) > 0 and np.ndim(targets[0]) >= 1
        self._targets: Any = None
        self._labels = None
        if step:
            lengths = [len(s) for s in self._sequences]
            self._targets, self._classes = _step_targets(targets, lengths, classes)
        elif targets is not None:
            self._targets, self._labels, self._classes = as_targets(
                "SequenceDatastore", targets, classes
            )
            if len(self._targets) != len(self._sequences):
                raise DataError(
                    f"SequenceDatastore: {len(self._sequences)} sequences but {len(self._targets)}"
                    " targets. Give one target per sequence."
                )
        self._set_padding(
            sequence_length=sequence_length,
            padding=padding,
            padding_value=padding_value,
            mask_as_input=mask_as_input,
            step_targets=step,
            target_padding_value=target_padding_value,
        )
        self._init_view()

    def _count(self) -> int:
        return len(self._sequences)

    def _source_labels(self) -> np.ndarray | None:
        return self._labels

    def _load(self, j: int) -> Any:
        if self._targets is None:
            return self._sequences[j]
        return self._sequences[j], self._targets[j]


SIGNAL_EXTENSIONS = (".npy", ".csv", ".mat")


def _mat_variable(path: str, names: list[str], variable: str | None) -> str:
    if variable is not None:
        if variable not in names:
            raise DataError(f"cannot read '{path}': no variable '{variable}'. It holds {names}.")
        return variable
    if len(names) != 1:
        raise DataError(
            f"cannot read '{path}': it holds variables {names}; choose one with `variable=`."
        )
    return names[0]


def _read_mat(data: bytes, path: str, variable: str | None) -> np.ndarray:
    import scipy.io

    if data[:8] == b"\x89HDF\r\n\x1a\n" or data[512:520] == b"\x89HDF\r\n\x1a\n":
        import h5py

        _probe_mat_hdf5(data, path)
        with h5py.File(io.BytesIO(data), "r") as handle:
            names = [k for k in handle if not k.startswith("#")]
            name = _mat_variable(path, names, variable)
            dataset = handle[name]
            if isinstance(dataset, h5py.Dataset):
                current_limits().check_stored_tensor(
                    f"SignalDatastore: '{path}'", name, dataset.shape or (),
                    dataset.dtype.itemsize, dataset.id.get_storage_size(),
                )  # fmt: skip
            return np.asarray(dataset[()]).T  # MATLAB stores column-major
    check_mat_v5(data, path)  # scipy crashes on some damaged files
    contents = scipy.io.loadmat(io.BytesIO(data))
    names = [k for k in contents if not k.startswith("__")]
    return np.asarray(contents[_mat_variable(path, names, variable)])


def _probe_mat_hdf5(data: bytes, path: str) -> None:
    """A v7.3 file is HDF5, on which a damaged file can hang the HDF5 library: read it whole
    in a child process first (through a private temporary copy of the bytes)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="deeptoolbox-mat-") as folder:
        copy = Path(folder) / "signal.mat"
        copy.write_bytes(data)
        try:
            probe_hdf5(copy, "SignalDatastore", DataError)
        except DataError as err:
            raise DataError(str(err).replace(str(copy), path)) from None


def _read_csv(data: bytes) -> np.ndarray:
    text = data.decode("utf-8")
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
    except ValueError:
        return np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2, skiprows=1)


def read_signal(
    path: str,
    variable: str | None = None,
    transpose: bool = False,
    remote: _files.Remote | None = None,
) -> torch.Tensor:
    """Read one signal file (.npy, .csv, .mat v5 or v7.3) as a float32 (T, C) tensor
    (a URL through ``remote``: storage options and cache).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "s.npy"); np.save(path, np.zeros((50, 3)))
        >>> read_signal(path).shape
        torch.Size([50, 3])
    """
    extension = os.path.splitext(path)[1].lower()
    try:
        data = _files.read_bytes(path, remote)
        if extension == ".npy":
            current_limits().check_npy(data, f"SignalDatastore: '{path}'")
            array = np.load(io.BytesIO(data), allow_pickle=False)
        elif extension == ".csv":
            array = _read_csv(data)
        elif extension == ".mat":
            array = _read_mat(data, path, variable)
        else:
            raise DataError(f"cannot read '{path}': unknown extension '{extension}'.")
    except ResourceLimitError:
        raise
    except DataError as err:
        raise DataError(f"SignalDatastore: {err}") from err
    except Exception as err:  # numpy/scipy/h5py raise many types on bad files
        raise DataError(
            f"SignalDatastore: cannot read '{path}': {type(err).__name__}: {err}"
        ) from err
    if array.dtype.kind not in "biuf" or array.ndim not in (1, 2):
        raise DataError(
            f"SignalDatastore: '{path}' must hold a numeric (T,) or (T, C) array; found dtype "
            f"{array.dtype} and shape {array.shape}."
        )
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    tensor = tensor.unsqueeze(1) if tensor.dim() == 1 else tensor
    return tensor.T.contiguous() if transpose else tensor


class SignalDatastore(_PaddedDatastore):
    """A folder (or list, or URL) of signal files, one sequence per file (MATLAB
    ``signalDatastore``). ``ds[i]`` is a float32 (T, C) tensor — with its class index when
    labelled; batches are padded dicts (see :class:`PaddedCollate`).

    Reads ``.npy``, ``.csv`` (a header row is skipped) and MATLAB ``.mat`` files (v5 through
    scipy, v7.3/HDF5 through h5py). ``variable`` names the MATLAB variable (needed when a
    file holds several). Signals are (T, C): time down the rows, as MATLAB stores them;
    ``transpose=True`` reads files stored (C, T).

    Args: as :class:`ImageDatastore` for ``location``, ``labels``, ``classes``,
    ``extensions``, ``recursive``, ``on_error``, ``storage_options``, ``cache_dir``; as
    :class:`SequenceDatastore` for padding.

    Example:
        >>> import tempfile, os
        >>> root = tempfile.mkdtemp()
        >>> for name, length in [("a", 30), ("b", 20)]:
        ...     os.makedirs(os.path.join(root, name))
        ...     np.save(os.path.join(root, name, "x.npy"), np.zeros((length, 2)))
        >>> ds = SignalDatastore(root)
        >>> ds.classes, ds.readall()["inputs"].shape
        (['a', 'b'], torch.Size([2, 30, 2]))
    """

    def __init__(
        self,
        location: _files.Location,
        *,
        variable: str | None = None,
        labels: str | Sequence[Any] | np.ndarray | None = "auto",
        classes: Sequence[Any] | None = None,
        extensions: Sequence[str] = SIGNAL_EXTENSIONS,
        recursive: bool = True,
        transpose: bool = False,
        sequence_length: str | int = "longest",
        padding: str = "right",
        padding_value: float = 0.0,
        mask_as_input: bool = False,
        on_error: str = "raise",
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        _files.check_on_error("SignalDatastore", on_error)
        self._remote = _files.remote_access("SignalDatastore", storage_options, cache_dir)
        self._set_padding(
            sequence_length=sequence_length,
            padding=padding,
            padding_value=padding_value,
            mask_as_input=mask_as_input,
        )
        self.variable, self.transpose = variable, bool(transpose)
        self._files, self._labels, self._classes, self._codes = _files.labelled_files(
            "SignalDatastore",
            location,
            extensions,
            recursive,
            labels,
            classes,
            on_error,
            self._read,
            self._remote,
        )
        self._init_view()

    @property
    def files(self) -> list[str]:
        """The file of each observation, in datastore order."""
        return [self._files[j] for j in self._order]

    def _read(self, path: str) -> torch.Tensor:
        return read_signal(path, self.variable, self.transpose, self._remote)

    def _count(self) -> int:
        return len(self._files)

    def _source_labels(self) -> np.ndarray | None:
        return self._labels

    def _load(self, j: int) -> Any:
        signal = self._read(self._files[j])
        if self._codes is None:
            return signal
        return signal, torch.tensor(self._codes[j])
