"""The Labeler's signal mode: regions saved to regions.csv, the min/max waveform of a
10⁶-sample signal, undo and bad region files."""

import csv
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from deeptoolbox.apps import AppOptions, create_app
from deeptoolbox.apps._signal_labels import SignalRegions, min_max_waveform
from deeptoolbox.errors import DataError

TOKEN = "t" * 32


def _client(root, session):
    app = create_app(options=AppOptions(root=root, token=TOKEN))
    app.state.signal_labeler = session
    return TestClient(app, headers={"X-Deeptoolbox-Token": TOKEN})


def test_regions_saved_to_csv_with_exactly_those_regions_and_undone(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(1000))
    np.savetxt(tmp_path / "b.csv", np.arange(500.0), delimiter=",")
    client = _client(tmp_path, SignalRegions(tmp_path, classes=["spike", "noise"], sample_rate=100))
    regions = [
        {"start": 4.0, "end": 5.5, "label": "noise"},
        {"start": 0.5, "end": 1.0, "label": "spike"},
    ]
    client.post("/api/signals/regions", json={"file": "a.npy", "regions": regions})
    client.post(
        "/api/signals/regions",
        json={"file": "b.csv", "regions": [{"start": 0, "end": 5, "label": "spike"}]},
    )
    with open(tmp_path / "regions.csv", newline="") as stream:
        rows = [
            (r["file"], float(r["start"]), float(r["end"]), r["label"])
            for r in csv.DictReader(stream)
        ]
    assert rows == [
        ("a.npy", 0.5, 1.0, "spike"),
        ("a.npy", 4.0, 5.5, "noise"),
        ("b.csv", 0.0, 5.0, "spike"),
    ]
    assert SignalRegions(tmp_path, sample_rate=100).regions["a.npy"][1] == regions[0]  # reloads
    outside = client.post(
        "/api/signals/regions",
        json={"file": "b.csv", "regions": [{"start": 4, "end": 6, "label": "spike"}]},
    )
    assert (
        outside.status_code == 400
        and "'b.csv' is empty or outside the signal (0..5.0 s)" in outside.json()["detail"]
    )
    view = client.post("/api/signals/undo").json()
    assert view["signals"][1]["regions"] == []
    assert len((tmp_path / "regions.csv").read_text().splitlines()) == 3


def test_waveform_of_a_million_samples_is_the_min_and_max_per_bin_and_fast(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=1_000_000)
    np.save(tmp_path / "long.npy", x)
    client = _client(tmp_path, SignalRegions(tmp_path, sample_rate=1000))
    client.get("/api/signals/waveform?file=long.npy&bins=1000")  # loads and caches the file
    began = time.perf_counter()
    wave = client.get("/api/signals/waveform?file=long.npy&bins=1000").json()
    elapsed = time.perf_counter() - began
    assert wave["duration"] == 1000.0 and len(wave["min"][0]) == 1000
    assert wave["min"][0][7] == pytest.approx(x[7000:8000].min()) and wave["max"][0][
        7
    ] == pytest.approx(x[7000:8000].max())
    window = client.get("/api/signals/waveform?file=long.npy&start=10&end=10.5&bins=100").json()
    assert window["max"][0][0] == pytest.approx(x[10000:10005].max())
    assert elapsed < 1.0, elapsed  # 10^6 samples to 1000 columns: a few ms of numpy
    lo, hi = min_max_waveform(np.arange(10.0), 20)  # more bins than samples: one per sample
    assert lo.tolist() == hi.tolist() == list(range(10))


def test_a_region_file_with_an_unknown_class_or_signal_is_refused_naming_it(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(10))
    (tmp_path / "regions.csv").write_text("file,start,end,label\na.npy,0,1,zebra\n")
    with pytest.raises(DataError, match=r"regions.csv' has classes \['zebra'\]"):
        SignalRegions(tmp_path, classes=["spike"])
    (tmp_path / "regions.csv").write_text("file,start,end,label\nmissing.npy,0,1,spike\n")
    with pytest.raises(DataError, match=r"line 2 of .*regions.csv' names 'missing.npy'"):
        SignalRegions(tmp_path, classes=["spike"])
