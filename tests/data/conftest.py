"""A local S3 server (moto) for the remote-data tests, started once per session on
127.0.0.1 and holding a small image folder (labels from folder names) and a Parquet file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


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
