"""Training-loop overhead: train() against a hand-written PyTorch loop, Keras 3 and Lightning.

Every contender trains the same small CNN (two 3x3 convolutions, pooling, one dense layer) on
the same in-memory images, for the same number of optimizer steps (SGD with momentum, batch
64), starting from the same weights. Contenders run interleaved, round after round, in one
process, so all see the same machine state; the figure is the median time per step over the
rounds, and the ratio is against the hand-written loop.

- ``hand-written``: a minimal loop over index slices (``model(x[i])``, cross-entropy,
  ``zero_grad``, ``backward``, ``step``) on an ``nn.Sequential``.
- ``train() display on``: ``deeptoolbox.train`` with the verbose table (and progress bar on a
  terminal); ``train() display off``: ``verbose=False``.
- ``keras fit``: Keras 3 on the torch backend, ``verbose=0`` and ``verbose=1`` (default).
- ``lightning``: ``Trainer.fit`` with logging, progress bar, checkpointing and model summary
  off, and with its defaults.

Peak memory: each contender also runs once in a fresh subprocess, which reports its peak
resident memory growth during training (``ru_maxrss`` after training minus before).

Run: ``.venv/bin/python benchmarks/train_overhead.py [--rounds 5] [--epochs 2]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

BATCH, COUNT, LEARN_RATE = 64, 1024, 0.01


def make_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(COUNT, 1, 28, 28, generator=g), torch.randint(0, 10, (COUNT,), generator=g)


def make_network():
    from deeptoolbox import Network
    from deeptoolbox import layers as L

    torch.manual_seed(0)
    return Network([
        L.ImageInput((1, 28, 28)), L.Conv2d(16, 3, padding="same", name="c1"), L.ReLU(), L.MaxPool2d(2),
        L.Conv2d(32, 3, padding="same", name="c2"), L.ReLU(), L.MaxPool2d(2), L.Flatten(), L.Dense(10, name="fc"),
    ])  # fmt: skip


def make_sequential() -> nn.Sequential:
    net = make_network()
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip
    for index, name in [(0, "c1"), (3, "c2"), (7, "fc")]:
        model[index].load_state_dict(net.layer(name).state_dict())
    return model


def hand_written(x, y, epochs: int) -> None:
    model = make_sequential()
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARN_RATE, momentum=0.9)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(COUNT)
        for start in range(0, COUNT, BATCH):
            index = order[start : start + BATCH]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def toolbox(x, y, epochs: int, verbose: bool) -> None:
    from deeptoolbox.training import TrainingOptions, train

    options = TrainingOptions(
        solver="sgdm", initial_learn_rate=LEARN_RATE, l2_regularization=0.0, max_epochs=epochs,
        mini_batch_size=BATCH, shuffle="every-epoch", verbose=verbose, verbose_frequency=10,
        execution_environment="cpu", precision="32", seed=0,
    )  # fmt: skip
    train(make_network(), (x, y), "crossentropy", options)


def keras_fit(x, y, epochs: int, verbose: int) -> None:
    import keras

    keras.config.set_image_data_format("channels_first")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((1, 28, 28)), keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2), keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(10),
    ])  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.SGD(LEARN_RATE, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x.numpy(), y.numpy(), batch_size=BATCH, epochs=epochs, verbose=verbose)


def lightning_fit(x, y, epochs: int, defaults: bool) -> None:
    import lightning as pl

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_sequential()

        def training_step(self, batch, _):
            inputs, targets = batch
            return F.cross_entropy(self.model(inputs), targets)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LEARN_RATE, momentum=0.9)

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True
    )
    quiet = {} if defaults else dict(
        logger=False, enable_progress_bar=False, enable_checkpointing=False,
        enable_model_summary=False,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1,
                             default_root_dir=folder, **quiet)  # fmt: skip
        trainer.fit(Module(), loader)


CONTENDERS = {
    "hand-written": lambda x, y, e: hand_written(x, y, e),
    "train() display on": lambda x, y, e: toolbox(x, y, e, True),
    "train() display off": lambda x, y, e: toolbox(x, y, e, False),
    "keras fit verbose=0": lambda x, y, e: keras_fit(x, y, e, 0),
    "keras fit default": lambda x, y, e: keras_fit(x, y, e, 1),
    "lightning quiet": lambda x, y, e: lightning_fit(x, y, e, False),
    "lightning default": lambda x, y, e: lightning_fit(x, y, e, True),
}


def timed(name: str, x, y, epochs: int) -> float:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        start = time.perf_counter()
        CONTENDERS[name](x, y, epochs)
        return time.perf_counter() - start


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_memory(name: str, epochs: int) -> float:
    """Peak RSS growth (MiB) while training, in a fresh process with every library imported."""
    folder = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys, json, resource, torch._dynamo, keras, lightning; sys.path.insert(0, {folder!r}); "
        "import train_overhead as t; import deeptoolbox.training; x, y = t.make_data(); "
        "before = t._current_rss_mib(); "
        f"t.timed({name!r}, x, y, {epochs}); "
        "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    x, y = make_data()
    steps = args.epochs * -(-COUNT // BATCH)
    for name in CONTENDERS:  # warm-up: imports, lazy initialization
        timed(name, x, y, 1)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(args.rounds):
        for name in CONTENDERS:
            times[name].append(timed(name, x, y, args.epochs) / steps)
    base = statistics.median(times["hand-written"])
    memory = {} if args.no_memory else {name: peak_memory(name, args.epochs) for name in CONTENDERS}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {steps} steps of batch "
          f"{BATCH} per run, median of {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'contender':22s} {'ms/step':>8s} {'ratio':>7s} {'peak MiB':>9s}")
    for name, values in times.items():
        per_step = statistics.median(values)
        peak = f"{memory[name]:9.1f}" if name in memory else ""
        print(f"{name:22s} {per_step * 1e3:8.2f} {per_step / base:7.3f} {peak}")
    print(f"noise: hand-written min/max over rounds = {min(times['hand-written']) * 1e3:.2f} / "
          f"{max(times['hand-written']) * 1e3:.2f} ms/step")  # fmt: skip


if __name__ == "__main__":
    main()
