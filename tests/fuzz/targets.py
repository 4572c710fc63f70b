"""Fuzz targets: every reader of untrusted files, with the invariant each must keep.

A reader either returns an object or raises a ``deeptoolbox.errors`` exception whose message
names the file it read; any other exception, a hang or unbounded memory is a finding.
Each target has a seed corpus of valid files the toolbox itself writes, and JSON targets
mutate the structure (values, keys, list items) as well as the bytes.

Run one target with atheris (coverage-guided), or all of them in one process (the first
byte of each input picks the target; what `make test` runs, to start Python once):
``python tests/fuzz/targets.py TARGET|all CORPUS_DIR -max_total_time=60``
"""

from __future__ import annotations

import copy
import io
import json
import os
import random
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@dataclass
class Target:
    """A reader under test: how to write the fuzzed bytes to a file and read it back."""

    name: str
    suffix: str
    read: Callable[[Path], object]
    seeds: Callable[[Path], list[bytes]]
    json_member: str | None = None  # mutate this JSON document structurally
    wrap: Callable[[bytes], bytes] | None = None  # fuzzed JSON -> the file's bytes


class Finding(AssertionError):
    """The reader broke its invariant on this input."""


def _small_network():
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    return Network([L.ImageInput((1, 6, 6), normalization="zscore"), L.Conv2d(2, 3, padding=1),
                    L.BatchNorm(), L.ReLU(), L.Flatten(), L.Dense(3), L.Softmax()],
                   classes=["a", "b", "c"])  # fmt: skip


def _saved_zip(folder: Path) -> bytes:
    from deeptoolbox import save

    return save(_small_network(), folder / "seed.zip").read_bytes()


def _zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rezip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, value in members.items():
            archive.writestr(name, value)
    return buffer.getvalue()


def _load_network(path: Path) -> object:
    from deeptoolbox import load

    return load(path)


_NETWORK_MEMBERS: dict[str, bytes] = {}


def _network_json_seeds(folder: Path) -> list[bytes]:
    _NETWORK_MEMBERS.update(_zip_members(_saved_zip(folder)))
    return [_NETWORK_MEMBERS["network.json"]]


def _with_network_json(text: bytes) -> bytes:
    if not _NETWORK_MEMBERS:
        _network_json_seeds(Path(tempfile.mkdtemp()))
    return _rezip({**_NETWORK_MEMBERS, "network.json": text})


_BUILT: dict[str, bytes] = {}


def _keras_model_file(folder: Path) -> bytes:
    if "keras" not in _BUILT:
        _BUILT["keras"] = _build_keras_file(folder)
    return _BUILT["keras"]


def _build_keras_file(folder: Path) -> bytes:
    import keras

    inputs = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.save(folder / "seed.keras")
    return (folder / "seed.keras").read_bytes()


_KERAS_MEMBERS: dict[str, bytes] = {}


def _keras_config_seeds(folder: Path) -> list[bytes]:
    _KERAS_MEMBERS.update(_zip_members(_keras_model_file(folder)))
    return [_KERAS_MEMBERS["config.json"]]


def _with_keras_config(text: bytes) -> bytes:
    if not _KERAS_MEMBERS:
        _keras_config_seeds(Path(tempfile.mkdtemp()))
    return _rezip({**_KERAS_MEMBERS, "config.json": text})


def _import_keras(path: Path) -> object:
    from deeptoolbox.interop import import_keras

    return import_keras(path)


def _onnx_seeds(folder: Path) -> list[bytes]:
    from deeptoolbox import Network
    from deeptoolbox import layers as L
    from deeptoolbox.interop import export_onnx

    net = Network([L.ImageInput((1, 6, 6), normalization="zscore", mean=0.5, std=2.0),
                   L.Conv2d(2, 3, padding=1), L.ReLU(), L.Flatten(), L.Dense(3)])  # fmt: skip
    return [export_onnx(net, folder / "seed.onnx").read_bytes()]


def _import_onnx(path: Path) -> object:
    from deeptoolbox.interop import import_onnx

    return import_onnx(path)


VNNLIB_SEED = b"""; a property over 2 inputs and 3 outputs
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (<= X_0 1.0))
(assert (>= X_0 -1.0))
(assert (<= X_1 0.5))
(assert (>= X_1 0.0))
(assert (or (and (>= Y_1 Y_0)) (and (>= Y_2 Y_0))))
"""


def _read_vnnlib(path: Path) -> object:
    from deeptoolbox.robustness import read_vnnlib

    return read_vnnlib(path, 2, 3)


def _checkpoint_seeds(folder: Path) -> list[bytes]:
    import torch

    from deeptoolbox.training import TrainingOptions, train

    x, y = torch.randn(16, 1, 6, 6), torch.randint(0, 3, (16,))
    options = TrainingOptions(max_epochs=1, mini_batch_size=8, verbose=False,
                              checkpoint_path=folder / "checkpoints")  # fmt: skip
    train(_small_network(), (x, y), "crossentropy", options)
    return [p.read_bytes() for p in sorted((folder / "checkpoints").iterdir()) if p.is_file()][:1]


def _load_checkpoint(path: Path) -> object:
    from deeptoolbox.training._checkpoint import load_checkpoint

    return load_checkpoint(path)


def _tokenizer_seeds(folder: Path) -> list[bytes]:
    from deeptoolbox.data import Tokenizer

    Tokenizer(max_tokens=20).fit(["a small test", "of the tokenizer", "a test"]).save(
        folder / "tok.json"
    )
    return [(folder / "tok.json").read_bytes()]


def _load_tokenizer(path: Path) -> object:
    from deeptoolbox.data import Tokenizer

    return Tokenizer.load(path)


def _npy_seeds(folder: Path) -> list[bytes]:
    import numpy as np

    buffers = []
    for array in (np.arange(24, dtype=np.float32).reshape(8, 3), np.linspace(0, 1, 10)):
        stream = io.BytesIO()
        np.save(stream, array)
        buffers.append(stream.getvalue())
    return buffers


def _csv_seeds(folder: Path) -> list[bytes]:
    return [b"a,b\n1.5,2\n3,4.25\n5,6\n", b"0.1\n0.2\n0.3\n"]


def _mat_seeds(folder: Path) -> list[bytes]:
    import h5py
    import numpy as np
    import scipy.io

    scipy.io.savemat(folder / "v5.mat", {"signal": np.arange(12.0).reshape(6, 2)})
    with h5py.File(folder / "v73.h5", "w", userblock_size=512) as handle:
        handle["signal"] = np.arange(12.0).reshape(2, 6)  # MATLAB v7.3: HDF5 after 512 bytes
    return [(folder / "v5.mat").read_bytes(), (folder / "v73.h5").read_bytes()]


def _read_signal(path: Path) -> object:
    from deeptoolbox.data._sequence import read_signal

    return read_signal(str(path))


def _image_seeds(folder: Path) -> list[bytes]:
    import numpy as np
    from PIL import Image

    pixels = (np.arange(8 * 8 * 3).reshape(8, 8, 3) * 3 % 256).astype(np.uint8)
    found = []
    for name, mode in (("rgb.png", "RGB"), ("gray.png", "L"), ("photo.jpg", "RGB")):
        image = Image.fromarray(pixels if mode == "RGB" else pixels[..., 0], mode)
        image.save(folder / name)
        found.append((folder / name).read_bytes())
    return found


def _decode_image(path: Path) -> object:
    from deeptoolbox.data._image import decode_image

    return decode_image(path.read_bytes(), "stored", str(path))


def _request_seeds(folder: Path) -> list[bytes]:
    import base64

    import numpy as np

    stream = io.BytesIO()
    np.save(stream, np.zeros((2, 3), np.float32))
    npy = base64.b64encode(stream.getvalue()).decode()
    return [json.dumps({"inputs": [[0.5, 1.0, -2.0]]}).encode(),
            json.dumps({"inputs": {"x": {"npy": npy}}}).encode()]  # fmt: skip


def _read_request(path: Path) -> object:
    """A server request body: a RequestError (an HTTP 4xx answer) or arrays, never a crash."""
    from deeptoolbox.deploy._server_inputs import parse_json, request_inputs
    from deeptoolbox.deploy._server_model import InputSpec
    from deeptoolbox.errors import RequestError

    try:
        return request_inputs(parse_json(path.read_bytes()), [InputSpec("x", "FeatureInput", (3,))])
    except RequestError as err:
        assert 400 <= err.status < 500, err.status
        return err


def _store_seeds(folder: Path) -> list[bytes]:
    from deeptoolbox.experiments import Experiment

    def objective(params: dict, monitor) -> dict:
        return {"loss": (params["x"] - 0.3) ** 2}

    path = folder / "store.db"
    exp = Experiment("seed", objective, {"x": [0.1, 0.5]}, store=path, metric="loss",
                     direction="minimize", artifacts=False)  # fmt: skip
    exp.run(workers=0, verbose=False)
    del exp
    import gc
    import sqlite3

    gc.collect()  # closes the store, then the write-ahead log is copied into the file itself
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return [path.read_bytes()]


def _read_store(path: Path) -> object:
    """An experiment store (SQLite) as the results commands read it; a fresh folder each time,
    so no write-ahead log of an earlier input is replayed."""
    import shutil

    from deeptoolbox.experiments import list_experiments, load_experiment

    folder = Path(tempfile.mkdtemp(prefix="store-"))
    try:
        copy = folder / path.name
        shutil.copyfile(path, copy)
        found = []
        for entry in list_experiments(copy):
            exp = load_experiment(entry["name"], copy)
            found.append((exp.results(), exp.counts(), [r.params for r in exp.records()]))
        return found
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_APP: dict[str, object] = {}
EDITS = [
    {"op": "add", "type": "Dense", "config": {"units": 3}, "name": "fc2"},
    {"op": "connect", "source": "fc", "destination": "fc2"},
    {"op": "rename", "name": "fc", "new_name": "head"},
    {"op": "set", "name": "fc", "config": {"units": 5}},
    {"op": "remove", "names": ["softmax"]},
    {"op": "freeze", "up_to": "conv"},
    {"op": "replace_head", "classes": ["a", "b", "c"], "learn_rate_factor": 10},
]


def _app_client():
    """The designer app's API (in-process), with a fresh small network before each request."""
    if not _APP:
        from fastapi.testclient import TestClient

        from deeptoolbox.apps import AppOptions, DesignerSession, create_app

        session = DesignerSession(_small_designer_network())
        options = AppOptions(root=Path(tempfile.mkdtemp(prefix="app-root-")), token="f" * 32)
        client = TestClient(create_app(session, options), headers={"X-Deeptoolbox-Token": "f" * 32})
        _APP.update(session=session, client=client)
    _APP["session"].replace(_small_designer_network())
    return _APP["client"]


def _small_designer_network():
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    return Network([L.ImageInput((1, 8, 8), name="input"), L.Conv2d(2, 3, name="conv"),
                    L.ReLU(name="relu"), L.Flatten(name="flat"), L.Dense(4, name="fc"),
                    L.Softmax(name="softmax")])  # fmt: skip


def _post_edit(path: Path) -> object:
    """A body for the designer's /api/edit: a 2xx or 4xx answer, never a server error."""
    response = _app_client().post("/api/edit", content=path.read_bytes(),
                                  headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code < 500, (response.status_code, response.text[:500])
    return response


TARGETS = {
    t.name: t
    for t in [
        Target("network_zip", ".zip", _load_network, lambda f: [_saved_zip(f)]),
        Target(
            "network_json",
            ".zip",
            _load_network,
            _network_json_seeds,
            json_member="network.json",
            wrap=_with_network_json,
        ),  # fmt: skip
        Target("keras_file", ".keras", _import_keras, lambda f: [_keras_model_file(f)]),
        Target(
            "keras_config",
            ".keras",
            _import_keras,
            _keras_config_seeds,
            json_member="config.json",
            wrap=_with_keras_config,
        ),  # fmt: skip
        Target("onnx", ".onnx", _import_onnx, _onnx_seeds),
        Target("vnnlib", ".vnnlib", _read_vnnlib, lambda f: [VNNLIB_SEED]),
        Target("checkpoint", ".ckpt", _load_checkpoint, _checkpoint_seeds),
        Target("tokenizer", ".json", _load_tokenizer, _tokenizer_seeds, json_member="tok.json"),
        Target("signal_npy", ".npy", _read_signal, _npy_seeds),
        Target("signal_csv", ".csv", _read_signal, _csv_seeds),
        Target("signal_mat", ".mat", _read_signal, _mat_seeds),
        Target("image", ".png", _decode_image, _image_seeds),
        Target("server_request", ".json", _read_request, _request_seeds, json_member="body"),
        Target("experiment_store", ".db", _read_store, _store_seeds),
        Target(
            "app_edit",
            ".json",
            _post_edit,
            lambda f: [json.dumps(e).encode() for e in EDITS],
            json_member="body",
        ),  # fmt: skip
    ]
}


def check_one(target: Target, data: bytes, folder: Path) -> None:
    """Read ``data`` as ``target``'s file: an object, or a toolbox error naming the file."""
    from deeptoolbox.errors import DeepToolboxError

    path = folder / f"input{target.suffix}"
    path.write_bytes(target.wrap(data) if target.wrap else data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target.read(path)
    except DeepToolboxError as err:
        if str(path) not in str(err) and path.name not in str(err):
            raise Finding(f"{target.name}: the error does not name the file: {err}") from err


# -- structure-aware mutation of JSON documents -----------------------------------------------
_VALUES = [None, -1, 0, 1, 2**40, 1.5, "", "x", [], {}, [1, 2], {"a": 1}, True, [-5, 3], "ReLU"]


def _new_value(rng: random.Random) -> object:
    return copy.deepcopy(rng.choice(_VALUES))  # a fresh object: a shared one could nest in itself


def mutate_json_value(value: object, rng: random.Random) -> object:
    """One random edit somewhere inside a JSON value (replace, delete, append, recurse)."""
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        roll = rng.random()
        if roll < 0.3:
            value[key] = _new_value(rng)
        elif roll < 0.45:
            del value[key]
        else:
            value[key] = mutate_json_value(value[key], rng)
        return value
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        roll = rng.random()
        if roll < 0.3:
            value[index] = _new_value(rng)
        elif roll < 0.45:
            del value[index]
        elif roll < 0.55:
            value.append(_new_value(rng))
        else:
            value[index] = mutate_json_value(value[index], rng)
        return value
    return _new_value(rng)


def _json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    import atheris

    rng = random.Random(seed)
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return atheris.Mutate(data, max_size)
    if rng.random() < 0.15:
        return atheris.Mutate(data, max_size)
    for _ in range(rng.randint(1, 3)):
        document = mutate_json_value(document, rng)
    return json.dumps(document).encode()[:max_size]


def _chosen(data: bytes) -> tuple[Target, bytes]:
    """Which target an input of the all-targets run is for (its first byte), and its file."""
    names = sorted(TARGETS)
    return TARGETS[names[data[0] % len(names)]] if data else TARGETS[names[0]], data[1:]


def write_seeds(target: Target | None, corpus: Path) -> int:
    """Write the seed corpus (valid files) of ``target`` (None: of all, each behind its
    selector byte) into ``corpus``; returns their count."""
    corpus.mkdir(parents=True, exist_ok=True)
    chosen = [target] if target is not None else [TARGETS[n] for n in sorted(TARGETS)]
    count = 0
    for each in chosen:
        prefix = b"" if target is not None else bytes([sorted(TARGETS).index(each.name)])
        for seed in each.seeds(Path(tempfile.mkdtemp(prefix=f"seed-{each.name}-"))):
            (corpus / f"seed-{each.name}-{count}").write_bytes(prefix + seed)
            count += 1
    return count


def _instrument() -> None:
    import atheris

    with atheris.instrument_imports(include=["deeptoolbox"]):
        import deeptoolbox.data  # noqa: F401
        import deeptoolbox.deploy._server_inputs  # noqa: F401
        import deeptoolbox.interop  # noqa: F401
        import deeptoolbox.network  # noqa: F401
        import deeptoolbox.robustness  # noqa: F401
        import deeptoolbox.training  # noqa: F401


def fuzz(name: str, argv: list[str]) -> None:
    """Run target ``name`` (or ``all``) under atheris with libFuzzer options ``argv``."""
    import atheris

    _instrument()
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    chosen = list(TARGETS.values()) if name == "all" else [TARGETS[name]]
    for target in chosen:
        if target.wrap is not None:
            target.seeds(folder)  # the valid file the fuzzed JSON goes into, built untimed
    if name == "all":
        from collections import Counter

        counts: Counter[str] = Counter()

        def one(data: bytes) -> None:
            target, payload = _chosen(data)
            counts[target.name] += 1
            if counts.total() % 250 == 0:  # libFuzzer exits without running atexit hooks
                print(f"inputs per target: {dict(sorted(counts.items()))}", file=sys.stderr,
                      flush=True)  # fmt: skip
            check_one(target, payload, folder)

        def mutate(data: bytes, max_size: int, seed: int) -> bytes:
            target, payload = _chosen(data)
            if target.json_member:
                payload = _json_mutator(payload, max_size - 1, seed)
            else:
                payload = atheris.Mutate(payload, max_size - 1)
            return data[:1] + payload if data else payload

        atheris.Setup([sys.argv[0], *argv], one, custom_mutator=mutate)
    else:
        target = TARGETS[name]
        mutator = _json_mutator if target.json_member else None
        atheris.Setup([sys.argv[0], *argv], lambda data: check_one(target, data, folder),
                      custom_mutator=mutator)  # fmt: skip
    atheris.Fuzz()


if __name__ == "__main__":
    fuzz(sys.argv[1], sys.argv[2:])
