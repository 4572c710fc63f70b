"""Train from an S3 bucket: images and a Parquet table read through s3:// URLs.

MATLAB reads ``imageDatastore("s3://bucket/images")`` with the AWS environment variables
set; deeptoolbox does the same through fsspec and s3fs (``pip install
"deeptoolbox[remote]"``). So that it runs anywhere, this example starts its own S3 server
(moto, on 127.0.0.1) and:

1. uploads handwritten digits as PNG files in one folder per class, and the same digits as
   a Parquet table (64 pixel columns and the label), in row groups of 128 rows;
2. reads the images with ``ImageDatastore("s3://digits/images", ...)`` (labels from the
   folder names) with a local ``cache_dir``: the first epoch downloads each file once,
   later epochs read the local copies;
3. trains a small CNN on 80% of them and scores it on the rest;
4. trains a small dense network on the Parquet table read in chunks
   (``TabularDatastore("s3://digits/table.parquet")``); with several processes
   (``deeptoolbox train --nproc 2 ...`` and ``execution_environment="parallel"``) each
   process would read only its own row groups.

Credentials come from the usual AWS variables (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``), or from ``storage_options={"key": ..., "secret": ...}``;
``endpoint_url`` points s3fs at any S3-compatible server (MinIO, Ceph, moto).

Run: ``python examples/remote_data.py`` (under a minute on two CPU cores; needs s3fs and
``moto[server]``).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from deeptoolbox import Network, datasets, evaluate, train
from deeptoolbox import layers as L
from deeptoolbox.data import ImageDatastore, TabularDatastore
from deeptoolbox.training import TrainingOptions

BUCKET = "digits"


def start_s3_server():
    """A local S3 server (moto) on a free port of 127.0.0.1 and its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # else one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def upload(folder: Path, endpoint: str, count: int) -> None:
    """Digits as PNG files (s3://digits/images/<label>/) and as a Parquet table."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import s3fs

    images, labels = datasets.digits()
    images, labels = images[:count], labels[:count]
    datasets.write_image_folder(folder / "images", images, labels)
    columns = {f"p{i}": images.reshape(len(images), -1)[:, i] for i in range(64)}
    pq.write_table(pa.table({**columns, "label": labels}), folder / "table.parquet",
                   row_group_size=128)  # fmt: skip
    fs = s3fs.S3FileSystem(endpoint_url=endpoint)  # credentials from the AWS variables
    fs.mkdir(BUCKET)
    fs.put(str(folder / "images"), f"{BUCKET}/images", recursive=True)
    fs.put(str(folder / "table.parquet"), f"{BUCKET}/table.parquet")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600, help="digits uploaded")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work", default=None, help="folder for the upload and the cache")
    args = parser.parse_args(argv)
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        os.environ.setdefault(name, value)  # moto accepts any credentials
    work = Path(args.work or tempfile.mkdtemp(prefix="remote-data-"))
    server, endpoint = start_s3_server()
    try:
        upload(work / "upload", endpoint, args.images)
        options = {"endpoint_url": endpoint}
        ds = ImageDatastore(f"s3://{BUCKET}/images", storage_options=options,
                            cache_dir=work / "cache")  # fmt: skip
        train_ds, test_ds = ds.split(0.8, seed=0)
        torch.manual_seed(0)
        cnn = Network([
            L.ImageInput((1, 8, 8)), L.Conv2d(16, 3, padding="same"), L.ReLU(),
            L.MaxPool2d(2), L.Flatten(), L.Dense(10), L.Softmax(),
        ])  # fmt: skip
        options_cnn = TrainingOptions(solver="adam", max_epochs=args.epochs,
                                      mini_batch_size=32, verbose=False, seed=0)  # fmt: skip
        train(cnn, train_ds, "crossentropy", options_cnn)
        image_accuracy = evaluate(cnn, test_ds)["accuracy"]
        cached = len([p for p in (work / "cache").iterdir() if p.name != "cache"])
        print(f"CNN on s3://{BUCKET}/images: test accuracy {image_accuracy:.3f} "
              f"({len(ds)} images, {cached} cached locally in {work / 'cache'})")  # fmt: skip

        table = TabularDatastore(f"s3://{BUCKET}/table.parquet", response="label",
                                 read_size=64, storage_options=options)  # fmt: skip
        dense = Network([L.FeatureInput(64), L.Dense(32), L.ReLU(), L.Dense(10), L.Softmax()])
        options_dense = TrainingOptions(solver="adam", max_epochs=args.epochs * 2,
                                        verbose=False, seed=0)  # fmt: skip
        train(dense, table, "crossentropy", options_dense)
        x, y = table.readall()
        with torch.no_grad():
            predicted = dense(x).argmax(1)
        table_accuracy = float((predicted == y).float().mean())
        print(f"Dense network on s3://{BUCKET}/table.parquet ({table.num_rows} rows): "
              f"training accuracy {table_accuracy:.3f}")  # fmt: skip
    finally:
        server.stop()
    return {"image_accuracy": image_accuracy, "table_accuracy": table_accuracy,
            "cached_files": cached, "images": len(ds), "rows": int(np.asarray(y).size)}  # fmt: skip


if __name__ == "__main__":
    main()
