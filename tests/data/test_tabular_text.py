"""TabularDatastore (CSV / Parquet in chunks, bounded memory) and TextDatastore + Tokenizer."""

import json
import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from deeptoolbox.data import TabularDatastore, TextDatastore, Tokenizer, loader
from deeptoolbox.errors import DataError, OptionError


def table(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "speed": rng.normal(size=n),
            "load": rng.integers(0, 10, size=n).astype(np.int64),
            "mode": rng.choice(["eco", "normal", "sport"], size=n),
            "health": rng.choice(["ok", "worn"], size=n),
            "wear": rng.random(size=n),
        }
    )


@pytest.fixture(params=["csv", "parquet"])
def table_file(request, tmp_path):
    data = table()
    path = tmp_path / f"t.{request.param}"
    if request.param == "csv":
        pacsv.write_csv(data, path)
    else:
        pq.write_table(data, path, row_group_size=7)
    return path, data


def test_chunks_encode_predictors_and_response(table_file):
    path, data = table_file
    ds = TabularDatastore(
        path, predictors=["speed", "load", "mode"], response="health", read_size=16
    )
    assert ds.feature_names == ["speed", "load", "mode=eco", "mode=normal", "mode=sport"]
    assert ds.classes == ["ok", "worn"] and ds.num_rows == 50
    chunks = list(ds)
    assert [len(y) for _, y in chunks] == [16, 16, 16, 2]
    x = torch.cat([c[0] for c in chunks])
    y = torch.cat([c[1] for c in chunks])
    modes = np.asarray(data["mode"].to_pylist())
    expected = np.column_stack(
        [
            data["speed"].to_numpy(),
            data["load"].to_numpy(),
            *[(modes == m).astype(float) for m in ("eco", "normal", "sport")],
        ]
    ).astype(np.float32)
    assert torch.allclose(x, torch.from_numpy(expected))
    health = np.asarray(data["health"].to_pylist())
    assert y.tolist() == [int(h == "worn") for h in health]
    values, counts = np.unique(health, return_counts=True)
    assert ds.count_each_label() == dict(zip(values.tolist(), counts.tolist(), strict=True))
    assert list(ds.labels) == health.tolist()


def test_regression_defaults_read_reset_readall_preview(table_file):
    path, data = table_file
    ds = TabularDatastore(path, response="wear", read_size=20)
    assert ds.predictors == ["speed", "load", "mode", "health"] and ds.classes is None
    x, y = ds.readall()
    assert x.shape == (50, 7)  # speed, load, mode x 3, health x 2
    assert torch.allclose(y, torch.tensor(data["wear"].to_pylist(), dtype=torch.float32))
    first = ds.read()
    assert first[0].shape[0] == 20 and ds.has_data()
    ds.read(), ds.read()
    assert not ds.has_data()
    with pytest.raises(DataError, match="reset"):
        ds.read()
    ds.reset()
    assert torch.equal(ds.read()[1], first[1])
    assert ds.preview(rows=3)[0].shape == (3, 7)


def test_partition_split_and_shuffle_cover_each_row_once(table_file):
    path, _ = table_file
    ds = TabularDatastore(path, response="wear", read_size=6)
    everything = sorted(ds.readall()[1].tolist())
    parts = [ds.partition(3, i).readall()[1].tolist() for i in range(3)]
    assert sorted(sum(parts, [])) == everything
    train, test = ds.split(0.7, seed=1)
    a, b = train.readall()[1].tolist(), test.readall()[1].tolist()
    assert sorted(a + b) == everything and 20 < len(a) < 50
    assert train.readall()[1].tolist() == a  # reproducible
    shuffled = ds.shuffle(seed=0).readall()[1].tolist()
    assert sorted(shuffled) == everything and shuffled != ds.readall()[1].tolist()
    with pytest.raises(OptionError, match="stratify"):
        ds.split(0.5, stratify=True)


def test_transform_and_loader_with_workers(table_file):
    path, _ = table_file
    ds = TabularDatastore(path, response="wear", read_size=10).transform(lambda c: (c[0] * 0, c[1]))
    assert float(ds.readall()[0].abs().sum()) == 0.0
    plain = TabularDatastore(path, response="wear", read_size=10)
    rows = torch.cat([y for _, y in loader(plain, workers=2)])
    assert sorted(rows.tolist()) == sorted(plain.readall()[1].tolist())


def test_bad_columns_categories_and_files(tmp_path):
    path = tmp_path / "t.csv"
    pacsv.write_csv(table(), path)
    with pytest.raises(DataError, match=r"\['pressure'\] not found.*Available"):
        TabularDatastore(path, response="pressure")
    ds = TabularDatastore(path, response="health", categories={"mode": ["eco", "normal"]})
    with pytest.raises(DataError, match="'mode' has values.*sport"):
        ds.readall()
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match="extension"):
        TabularDatastore(tmp_path / "t.xlsx")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match=r"bad\.csv.*Expected 2 columns"):
        TabularDatastore(bad, response="b").readall()
    late = tmp_path / "late.csv"
    late.write_text("a,b\n" + "1,2\n" * 5000 + "3\n")
    ds = TabularDatastore(late, response="b", block_size=1024)
    with pytest.raises(DataError, match=r"late\.csv"):
        ds.readall()


def test_memory_stays_near_the_chunk_size(tmp_path):
    rows, read_size = 200_000, 2_000
    rng = np.random.default_rng(0)
    data = pa.table({f"c{i}": rng.normal(size=rows) for i in range(6)})
    path = tmp_path / "big.csv"
    pacsv.write_csv(data, path)
    file_bytes = path.stat().st_size  # ~ 25 MB of text, 10 MB as float64 arrays
    ds = TabularDatastore(path, response="c5", read_size=read_size, block_size=64 << 10)
    chunk_bytes = read_size * 6 * 8
    baseline = pa.total_allocated_bytes()
    arrow_peak = 0
    total = 0
    tracemalloc.start()
    for x, _ in ds:
        total += len(x)
        arrow_peak = max(arrow_peak, pa.total_allocated_bytes() - baseline)
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == rows
    assert python_peak < 20 * chunk_bytes < file_bytes / 5  # numpy/torch side: a few chunks
    assert arrow_peak < file_bytes / 5  # pyarrow side: a few read blocks, never the file


def test_tokenizer_fit_encode_save_load(tmp_path):
    tok = Tokenizer(max_tokens=5).fit(["a a a b b c", "d"])
    assert tok.vocabulary == ["<pad>", "<unk>", "a", "b", "c"]
    assert tok.encode("A b d!") == [2, 3, 1, 1]
    path = tmp_path / "tok.json"
    tok.save(path)
    assert json.loads(path.read_text())["vocabulary"] == tok.vocabulary
    again = Tokenizer.load(path)
    assert again.encode("c a") == [4, 2] and again.to_config() == tok.to_config()
    assert not list(tmp_path.glob("*.part"))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataError, match="not a saved deeptoolbox Tokenizer"):
        Tokenizer.load(tmp_path / "other.json")
    with pytest.raises(DataError, match="fit"):
        Tokenizer().encode("x")
    with pytest.raises(OptionError, match="max_tokens"):
        Tokenizer(max_tokens=1)


def test_text_datastore_labels_split_and_padding():
    texts = [f"{'good' if i % 2 else 'bad'} movie number {i}" for i in range(20)]
    labels = ["pos" if i % 2 else "neg" for i in range(20)]
    ds = TextDatastore(texts, labels, sequence_length=3, padding="left")
    assert ds.count_each_label() == {"neg": 10, "pos": 10}
    ids, label = ds[1]
    assert ds.tokenizer.decode(ids) == "good movie number 1" and ds.classes[int(label)] == "pos"
    batch = next(iter(loader(ds, batch_size=4)))
    assert batch["inputs"].shape == (4, 3) and batch["mask"].all()
    a, b = ds.split(0.5, seed=0)
    assert a.count_each_label() == {"neg": 5, "pos": 5}
    shared = TextDatastore(["good unseen words"], tokenizer=ds.tokenizer)
    assert shared[0].tolist()[0] == ds.tokenizer.encode("good")[0] and shared[0].tolist()[1] == 1
    with pytest.raises(DataError, match="2 texts but 1 labels"):
        TextDatastore(["a", "b"], ["x"])


def test_text_from_files_by_file_and_line(tmp_path):
    for label, text in (
        ("spam", "win money now"),
        ("ham", "meeting at noon"),
        ("spam", "free money"),
    ):
        folder = tmp_path / "mail" / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{len(list(folder.iterdir()))}.txt").write_text(text)
    ds = TextDatastore.from_files(tmp_path / "mail")
    assert ds.classes == ["ham", "spam"] and ds.count_each_label() == {"ham": 1, "spam": 2}
    assert ds.tokenizer.decode(ds[0][0]) == "meeting at noon"
    lines = tmp_path / "lines.txt"
    lines.write_text("one two\n\nthree\n")
    by_line = TextDatastore.from_files(lines, by="line", labels=None)
    assert len(by_line) == 2 and by_line.readall()["lengths"].tolist() == [2, 1]
