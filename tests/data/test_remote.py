"""Remote data for real: file datastores read s3:// (a moto S3 server on 127.0.0.1, started
once per session, holding a small image folder and Parquet files; through s3fs) and
http:// (a local http.server) URLs, cache remote files in ``cache_dir``, explain missing
packages and empty URLs, and two training processes read disjoint shards."""

from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import socket
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.data import FileDatastore, ImageDatastore, TabularDatastore, loader
from deeptoolbox.errors import DataError, MissingDependencyError, OptionError
from deeptoolbox.training import TrainingOptions, launch, train

# The S3 server: session-scoped, here rather than in a tests/data/conftest.py, whose module
# name would shadow the conftest that tests/robustness imports helpers from.


@dataclass
class S3:
    """The server's address and what the fixture uploaded."""

    options: dict  # storage_options for s3fs: endpoint_url, key, secret
    bucket: str
    images: Path  # the local copy of s3://<bucket>/images
    labels: np.ndarray  # the label of each image written
    parquet: Path  # the local copy of s3://<bucket>/table.parquet
    uneven: Path  # s3://<bucket>/uneven.parquet: 9 row groups of 8 rows

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(**self.options)


def write_table(path: Path, rows: int = 64, row_group_size: int = 8) -> None:
    """A Parquet table: ``id`` (the row number), two features and a text class ``y``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 2))
    table = pa.table({
        "id": np.arange(rows, dtype=np.int64), "x1": x[:, 0], "x2": x[:, 1],
        "y": np.where(x[:, 0] + x[:, 1] > 0, "high", "low"),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    pytest.importorskip("flask")  # moto[server]
    from deeptoolbox.datasets import digits, write_image_folder

    root = tmp_path_factory.mktemp("s3-upload")
    images, labels = digits()
    keep = np.flatnonzero(np.isin(labels, ["0", "1", "2", "3"]))[:32]  # 4 classes, 8x8 gray images
    folder = write_image_folder(root / "images", images[keep], labels[keep])
    write_table(root / "table.parquet")
    write_table(root / "uneven.parquet", rows=72)
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
        store = S3(options, "deeptoolbox-test", folder, labels[keep], root / "table.parquet",
                   root / "uneven.parquet")  # fmt: skip
        fs = store.filesystem()
        fs.mkdir(store.bucket)
        fs.put(str(folder), f"{store.bucket}/images", recursive=True)
        for name in ("table.parquet", "uneven.parquet"):
            fs.put(str(root / name), f"{store.bucket}/{name}")
        fs.invalidate_cache()
        yield store
    finally:
        server.stop()


def tiny_cnn(classes: int) -> Network:
    torch.manual_seed(0)
    return Network([
        L.ImageInput((1, 8, 8)), L.Conv2d(4, 3, padding="same"), L.ReLU(), L.Flatten(),
        L.Dense(classes), L.Softmax(),
    ])  # fmt: skip


def test_image_datastore_reads_s3_with_labels_and_trains_a_cnn(s3):
    ds = ImageDatastore(s3.url("images"), storage_options=s3.options)
    local = ImageDatastore(s3.images)
    assert len(ds) == len(local) == 32 and ds.classes == ["0", "1", "2", "3"]
    assert all(f.startswith(f"s3://{s3.bucket}/images/") for f in ds.files)
    assert sorted(ds.labels.tolist()) == sorted(s3.labels.tolist())
    for i in (0, 13, 31):  # the same pixels and labels as the local files
        assert torch.equal(ds[i][0], local[i][0]) and int(ds[i][1]) == int(local[i][1])
    net = tiny_cnn(4)
    before = net.layer("conv2d_1").weight.detach().clone()
    options = TrainingOptions(max_epochs=1, mini_batch_size=8, verbose=False, seed=0)
    result = train(net, ds, "crossentropy", options)
    assert len(result.history.iterations) == 4  # 32 images in batches of 8, all read
    assert np.isfinite(result.history.iterations[-1]["loss"])
    assert not torch.equal(net.layer("conv2d_1").weight, before)
    assert net.classes == ["0", "1", "2", "3"]


def test_tabular_datastore_reads_s3_parquet_by_row_group(s3):
    ds = TabularDatastore(s3.url("table.parquet"), response="y", read_size=8,
                          storage_options=s3.options)  # fmt: skip
    table = pq.read_table(s3.parquet)
    assert ds.num_rows == 64 and ds.classes == ["high", "low"]
    x, y = ds.readall()
    assert torch.equal(x[:, 0], torch.arange(64, dtype=torch.float32))
    assert np.allclose(x[:, 1].numpy(), table["x1"].to_numpy())
    assert y.tolist() == [int(v == "low") for v in table["y"].to_pylist()]
    ids = [ds.shard(2, r).readall()[0][:, 0].long().tolist() for r in (0, 1)]
    groups = [sorted({i // 8 for i in part}) for part in ids]  # 8 rows per row group
    assert groups == [[0, 2, 4, 6], [1, 3, 5, 7]] and sorted(ids[0] + ids[1]) == list(range(64))
    with_workers = torch.cat([x[:, 0] for x, _ in loader(ds, workers=2)])  # s3fs after a fork
    assert sorted(with_workers.long().tolist()) == list(range(64))


def test_a_part_never_reads_the_row_groups_of_the_other_parts(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(path, rows=32, row_group_size=8)
    group = pq.ParquetFile(path).metadata.row_group(1)
    data = bytearray(path.read_bytes())
    for j in range(group.num_columns):  # damage every column of row group 1, only
        column = group.column(j)
        start = column.dictionary_page_offset or column.data_page_offset
        data[start : start + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    ds = TabularDatastore(path, predictors=["x1"], response="y", classes=["high", "low"])
    assert ds.partition(2, 0).readall()[0].shape == (16, 1)  # row groups 0 and 2: intact
    with pytest.raises(DataError, match="t.parquet"):
        ds.partition(2, 1).readall()  # row groups 1 and 3


def test_cache_dir_keeps_local_copies_that_outlive_the_remote_files(s3, tmp_path):
    fs = s3.filesystem()
    fs.copy(f"{s3.bucket}/images", f"{s3.bucket}/doomed/images", recursive=True)
    fs.copy(f"{s3.bucket}/table.parquet", f"{s3.bucket}/doomed/table.parquet")
    fs.invalidate_cache()
    cache = tmp_path / "cache"
    cached = ImageDatastore(s3.url("doomed/images"), storage_options=s3.options, cache_dir=cache)
    uncached = ImageDatastore(s3.url("doomed/images"), storage_options=s3.options)
    table = TabularDatastore(s3.url("doomed/table.parquet"), response="y",
                             storage_options=s3.options, cache_dir=cache)  # fmt: skip
    first = [cached[i][0] for i in range(len(cached))]
    rows = table.readall()[0]
    copies = [p for p in cache.iterdir() if p.name != "cache"]
    assert len(copies) == 33  # one local file per image, and the table
    fs.rm(f"{s3.bucket}/doomed", recursive=True)
    fs.invalidate_cache()
    assert all(torch.equal(cached[i][0], first[i]) for i in range(len(cached)))  # local copies
    assert torch.equal(table.readall()[0], rows)
    with pytest.raises(DataError, match="doomed/images/"):
        uncached[0]  # without a cache the deleted object is gone
    again = ImageDatastore(s3.images, cache_dir=cache)  # local paths are never copied
    assert len(again) == 32 and len([p for p in cache.iterdir() if p.name != "cache"]) == 33


def test_file_datastore_gives_read_fn_the_local_copy(s3, tmp_path):
    seen = []

    def read(path):
        seen.append(path)
        with open(path, "rb") as handle:  # a plain local file: any reader works
            return torch.tensor(len(handle.read()))

    ds = FileDatastore(s3.url("images/1"), read, storage_options=s3.options,
                       cache_dir=tmp_path, labels=None)  # fmt: skip
    sizes = [int(ds[i]) for i in range(len(ds))]
    local = sorted((s3.images / "1").iterdir())
    assert sizes == [p.stat().st_size for p in local]
    assert all(os.path.dirname(p) == str(tmp_path) for p in seen)


def test_missing_packages_empty_urls_and_bad_options_are_explained(s3, monkeypatch):
    import fsspec

    if "gs" in fsspec.registry:  # gcsfs installed and already loaded: cannot be hidden
        pytest.skip("gcsfs is loaded")
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed
    with pytest.raises(
        MissingDependencyError, match=r"gs:// needs gcsfs: pip install \"deeptoolbox\[remote\]\""
    ):
        ImageDatastore("gs://bucket/images")
    with pytest.raises(DataError, match=rf"cannot find 's3://{s3.bucket}/no-such-folder'"):
        ImageDatastore(s3.url("no-such-folder"), storage_options=s3.options)
    with pytest.raises(
        DataError, match=rf"no files with extensions .* in folder 's3://{s3.bucket}/images'"
    ):
        TabularDatastore(s3.url("images"), storage_options=s3.options)
    with pytest.raises(OptionError, match="no protocol 'nosuch://'"):
        ImageDatastore("nosuch://bucket/x")
    with pytest.raises(OptionError, match="`storage_options` must be a dict"):
        ImageDatastore(s3.url("images"), storage_options="key=abc")
    with pytest.raises(OptionError, match="`cache_dir` must be a folder path"):
        TabularDatastore(s3.url("table.parquet"), cache_dir=3)
    typo = {**s3.options, "endpointurl": s3.options["endpoint_url"]}
    with pytest.raises(OptionError, match=r"does not take one of the storage_options.*endpointurl"):
        ImageDatastore(s3.url("images"), storage_options=typo)
    closed = {**s3.options, "endpoint_url": f"http://127.0.0.1:{_closed_port()}",
              "config_kwargs": {"connect_timeout": 0.5, "retries": {"max_attempts": 1}}}  # fmt: skip
    with pytest.raises(DataError, match=r"cannot reach 's3://.*Could not connect") as err:
        ImageDatastore(s3.url("images"), storage_options=closed)
    assert "testing" not in str(err.value)  # the secret is not in the message, its key is
    assert "'secret'" in str(err.value)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def http_folder(s3):
    pytest.importorskip("aiohttp")  # fsspec's http filesystem

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    root = s3.images.parent
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_http_folders_and_files(http_folder, s3):
    ds = ImageDatastore(f"{http_folder}/images/")
    local = ImageDatastore(s3.images)
    assert len(ds) == 32 and ds.classes == local.classes
    assert torch.equal(ds[5][0], local[5][0]) and int(ds[5][1]) == int(local[5][1])
    table = TabularDatastore(f"{http_folder}/table.parquet", response="y", read_size=16)
    assert torch.equal(table.readall()[0], TabularDatastore(s3.parquet, response="y").readall()[0])


SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    from deeptoolbox import Network, layers as L
    from deeptoolbox.data import ImageDatastore, TabularDatastore, loader
    from deeptoolbox.training import TrainingOptions, train

    if __name__ == "__main__":
        images, table, options, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
        rank = os.environ["RANK"]
        # one process group for the train() calls (each call would otherwise start
        # and end its own, and a later one can read the earlier one's addresses)
        torch.distributed.init_process_group("gloo")
        settings = dict(max_epochs=1, mini_batch_size=8, execution_environment="parallel",
                        verbose=False, seed=0)
        # each rank's cache_dir ends up holding exactly the images that rank read
        ds = ImageDatastore(images, storage_options=options, cache_dir=f"{out}/cache{rank}")
        torch.manual_seed(0)
        net = Network([L.ImageInput((1, 8, 8)), L.Conv2d(4, 3), L.ReLU(), L.Flatten(),
                       L.Dense(4), L.Softmax()])
        images_run = train(net, ds, "crossentropy", TrainingOptions(**settings))

        def recorder(name):  # a transform writing the ids of each chunk this rank reads
            def record(chunk):
                with open(f"{out}/{name}{rank}", "a") as f:
                    f.write(" ".join(str(int(i)) for i in chunk[0][:, 0]) + "\\n")
                return chunk
            return record

        plain = TabularDatastore(table, response="y", read_size=8, storage_options=options)
        rows = plain.transform(recorder("ids"))
        net = Network([L.FeatureInput(3), L.Dense(2), L.Softmax()])
        table_run = train(net, rows, "crossentropy", TrainingOptions(**settings))
        # 9 row groups: rank 0 has 5, rank 1 has 4; both stop after 4 (no rank waits forever)
        uneven = TabularDatastore(table.replace("table", "uneven"), response="y", read_size=8,
                                  storage_options=options)
        uneven_run = train(net, uneven, "crossentropy", TrainingOptions(**settings))

        # the same table in the user's DataLoader: its dataset is sharded the same way
        batches = loader(plain.transform(recorder("loader_ids")), workers=0)
        loader_run = train(net, batches, "crossentropy", TrainingOptions(**settings))
        sys.stdout.write(f"ITERATIONS {len(images_run.history.iterations)} "
                         f"{len(table_run.history.iterations)} "
                         f"{len(uneven_run.history.iterations)} "
                         f"{len(loader_run.history.iterations)}\\n")
        sys.stdout.flush()
        torch.distributed.destroy_process_group()
""")


@pytest.mark.slow
def test_two_processes_read_disjoint_shards_that_cover_everything(s3, tmp_path, capfd):
    script = tmp_path / "remote_ddp.py"
    script.write_text(SCRIPT)
    args = [s3.url("images"), s3.url("table.parquet"), json.dumps(s3.options), str(tmp_path)]
    assert launch(script, 2, args) == 0
    assert capfd.readouterr().out.count("ITERATIONS 4 4 4 4") == 2
    read = [{p.name for p in (tmp_path / f"cache{r}").iterdir() if p.name != "cache"}
            for r in (0, 1)]  # fmt: skip
    assert len(read[0]) == len(read[1]) == 16 and not read[0] & read[1]
    ids = [list(map(int, (tmp_path / f"ids{r}").read_text().split())) for r in (0, 1)]
    assert sorted(ids[0] + ids[1]) == list(range(64))  # every row once, in one process
    assert {i // 8 for i in ids[0]} == {0, 2, 4, 6}  # rank 0 read its row groups only
    ids = [list(map(int, (tmp_path / f"loader_ids{r}").read_text().split())) for r in (0, 1)]
    assert sorted(ids[0] + ids[1]) == list(range(64)) and {i // 8 for i in ids[1]} == {1, 3, 5, 7}


def test_a_rows_split_part_does_not_depend_on_the_sharding(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(path, rows=64, row_group_size=8)
    ds = TabularDatastore(path, response="y", read_size=5)
    fit, check = ds.split(0.75, seed=3)
    whole = sorted(fit.readall()[0][:, 0].long().tolist())
    sharded = sorted(sum((fit.shard(2, r).readall()[0][:, 0].long().tolist() for r in (0, 1)), []))
    held_out = set(check.readall()[0][:, 0].long().tolist())
    assert sharded == whole and not held_out & set(whole)  # no validation row trained on
    assert sorted(held_out | set(whole)) == list(range(64))


def test_every_file_datastore_reads_s3_with_its_options(s3, tmp_path):
    from deeptoolbox.data import SignalDatastore, TextDatastore
    from deeptoolbox.vision import PixelLabelDatastore, write_pixel_labels

    fs = s3.filesystem()
    signals = {f"{s3.bucket}/signals/{c}/{i}.npy": np.full((5 + i, 2), i, np.float32)
               for c in ("a", "b") for i in range(2)}  # fmt: skip
    for key, value in signals.items():
        np.save(tmp_path / "s.npy", value)
        fs.put(str(tmp_path / "s.npy"), key)
    fs.pipe({f"{s3.bucket}/texts/pos/1.txt": b"good film\n", f"{s3.bucket}/texts/neg/1.txt":
             b"bad plot\nbad actors\n"})  # fmt: skip
    masks = np.zeros((2, 4, 4), np.int64)
    masks[1, :2] = 1
    fs.put(str(write_pixel_labels(tmp_path / "masks", masks, label_ids=[0, 255])),
           f"{s3.bucket}/masks", recursive=True)  # fmt: skip
    fs.invalidate_cache()
    options = s3.options
    sig = SignalDatastore(s3.url("signals"), storage_options=options, cache_dir=tmp_path / "c")
    assert sig.classes == ["a", "b"] and [tuple(sig[i][0].shape) for i in range(4)] == [
        (5, 2), (6, 2), (5, 2), (6, 2)]  # fmt: skip
    texts = TextDatastore.from_files(s3.url("texts"), storage_options=options)
    assert texts.classes == ["neg", "pos"] and len(texts) == 2
    lines = TextDatastore.from_files(s3.url("texts"), by="line", labels=None,
                                     storage_options=options)  # fmt: skip
    assert len(lines) == 3
    labels = PixelLabelDatastore(s3.url("masks"), ["background", "object"], [0, 255],
                                 storage_options=options)  # fmt: skip
    assert labels.count_each_label() == {"background": 24, "object": 8}
