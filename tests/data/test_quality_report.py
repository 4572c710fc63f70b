"""quality_report and `deeptoolbox data check`: a folder with planted problems gives exactly
those findings; signals, datastores, options, the table, JSON and picture outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io
import torch
from _planted_data import planted_folder, smooth_image
from PIL import Image

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.cli import main
from deeptoolbox.data import (
    QUALITY_CHECKS,
    ArrayDatastore,
    ImageDatastore,
    SignalDatastore,
    quality_report,
)
from deeptoolbox.errors import DataError, OptionError


def _found(report) -> dict:
    """The findings by check: file sets for groups, files for single-file checks."""
    found: dict = {}
    for f in report.findings:
        value = frozenset(f.files) if len(f.files) > 1 or "duplicates" in f.check or (
            f.check == "split-leakage") else f.files[0]  # fmt: skip
        found.setdefault(f.check, []).append(value)
    return found


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_problems_are_found_and_nothing_else(tmp_path, seed):
    planted = planted_folder(tmp_path, seed=seed)
    report = quality_report(tmp_path)
    found = _found(report)
    assert set(found) == set(planted)  # nothing else: no other check has a finding
    assert sorted(found["unreadable"]) == sorted(planted["unreadable"])
    assert set(found["exact-duplicates"]) == set(planted["exact-duplicates"])
    assert len(found["exact-duplicates"]) == 5
    assert set(found["split-leakage"]) == set(planted["split-leakage"])
    assert len(found["split-leakage"]) == 2
    assert found["near-duplicates"] == planted["near-duplicates"]
    assert found["blank-image"] == planted["blank-image"]
    (imbalance,) = report.by_check("class-imbalance")
    owl = {str(p) for p in tmp_path.glob("*/owl/*.png")}
    assert set(imbalance.files) == owl and "'owl'" in imbalance.message
    assert report.summary["splits"] == {"test": 18, "train": 57}
    assert report.summary["classes"]["test"] == {"cat": 6, "dog": 6, "fox": 5, "owl": 1}
    assert report.summary["formats"] == {"PNG RGB": 71, "JPEG RGB": 1}
    assert report.summary["unreadable"] == 3 and report.summary["image_sizes"] == {"32x32": 72}


def test_each_finding_is_its_check_of_the_catalogue(tmp_path):
    planted_folder(tmp_path)
    report = quality_report(tmp_path)
    assert all(f.severity == QUALITY_CHECKS[f.check] for f in report.findings)
    assert {f.check for f in report.errors} == {"unreadable", "split-leakage"}
    truncated = next(f for f in report.by_check("unreadable") if "truncated" in f.files[0])
    assert "truncated" in truncated.message


def test_table_json_and_picture(tmp_path):
    planted = planted_folder(tmp_path / "data")
    report = quality_report(tmp_path / "data")
    frame = report.to_frame()
    assert len(frame) == sum(len(f.files) for f in report.findings)
    leaks = frame[frame.check == "split-leakage"]
    assert set(leaks.file) == set().union(*planted["split-leakage"])
    assert set(leaks.split) == {"train", "test"}
    black = frame[frame.check == "blank-image"].iloc[0]
    assert (black.split, black.label) == ("train", "fox")
    saved = json.loads(report.to_json(tmp_path / "report.json"))
    assert json.loads((tmp_path / "report.json").read_text()) == saved
    assert [f["files"] for f in saved["findings"]] == [list(f.files) for f in report.findings]
    assert saved["summary"]["classes"]["train"]["owl"] == 1
    report.plot(tmp_path / "report.png")
    with Image.open(tmp_path / "report.png") as picture:
        assert picture.size[0] > 500 and picture.size[1] > 400
    text = str(report)
    assert "13 finding(s)" in text and "[error] split-leakage" in text
    assert len(text.splitlines()) == 6 + len(report.findings)  # header, 5 summary lines


def test_the_command_line_prints_the_report_and_fails_on_errors(tmp_path, capsys):
    planted_folder(tmp_path / "data")
    code = main(["data", "check", str(tmp_path / "data"), "--json", str(tmp_path / "r.json"),
                 "--plot", str(tmp_path / "r.png"), "--csv", str(tmp_path / "r.csv")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "split-leakage" in out and "black.png" in out
    assert len(json.loads((tmp_path / "r.json").read_text())["findings"]) == 13
    assert (tmp_path / "r.png").stat().st_size > 10_000
    assert (tmp_path / "r.csv").read_text().startswith("finding,check,severity,file")
    clean = tmp_path / "clean" / "a"
    clean.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for k in range(4):
        Image.fromarray(smooth_image(rng)).save(clean / f"{k}.png")
    assert main(["data", "check", str(tmp_path / "clean")]) == 0
    assert "0 finding(s)" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_mixed_sizes_channels_and_a_dict_of_splits(tmp_path):
    rng = np.random.default_rng(3)
    for k in range(12):
        Image.fromarray(smooth_image(rng)).save(tmp_path / f"{k:02d}.png")
    Image.fromarray(smooth_image(rng, 48)).save(tmp_path / "big.png")
    Image.fromarray(smooth_image(rng)[..., 0]).save(tmp_path / "gray.png")
    ds = ImageDatastore(tmp_path)
    train, test = ds.subset(np.arange(0, 10)), ds.subset(np.arange(10, len(ds)))
    report = quality_report({"train": train, "test": test})
    found = _found(report)
    assert set(found) == {"mixed-sizes", "mixed-channels"}
    assert found["mixed-sizes"] == [str(tmp_path / "big.png")]
    assert found["mixed-channels"] == [str(tmp_path / "gray.png")]
    assert "(32, 32): 13" in report.by_check("mixed-sizes")[0].message
    assert report.summary["splits"] == {"train": 10, "test": 4}


def _save_mat(path, signal, fs):
    scipy.io.savemat(path, {"x": signal, "fs": fs})


def test_signals_duplicates_nan_and_constant_channels_and_sample_rates(tmp_path):
    rng = np.random.default_rng(0)
    signals = {f"s{k:02d}.mat": rng.normal(size=(100 + 10 * k, 2)) for k in range(12)}
    signals["copy.mat"] = signals["s03.mat"]
    with_nan = rng.normal(size=(80, 2))
    with_nan[5, 1] = np.nan
    signals["nan.mat"] = with_nan
    flat = rng.normal(size=(80, 2))
    flat[:, 0] = 0.25
    signals["flat.mat"] = flat
    for name, signal in signals.items():
        _save_mat(tmp_path / name, signal, 500.0 if name == "s07.mat" else 1000.0)
    report = quality_report(SignalDatastore(tmp_path, variable="x"))
    found = _found(report)
    assert set(found) == {"exact-duplicates", "nan-values", "constant-channel",
                          "mixed-sample-rates"}  # fmt: skip
    assert found["exact-duplicates"] == [frozenset({str(tmp_path / "s03.mat"),
                                                    str(tmp_path / "copy.mat")})]  # fmt: skip
    assert found["nan-values"] == [str(tmp_path / "nan.mat")]
    assert "[1]" in report.by_check("nan-values")[0].message
    assert found["constant-channel"] == [str(tmp_path / "flat.mat")]
    assert found["mixed-sample-rates"] == [str(tmp_path / "s07.mat")]
    lengths = [len(s) for s in signals.values()]
    assert report.summary["signal_lengths"] == {
        "min": min(lengths), "median": float(np.median(lengths)), "max": max(lengths)}  # fmt: skip
    assert report.summary["sample_rates"] == {1000.0: 14, 500.0: 1}


def test_outliers_in_simple_statistics():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.3, 0.7, size=(40, 1, 16, 16))
    images[7] = np.clip(images[7] * 0.1 + 0.9, 0, 1)  # very bright, little contrast
    report = quality_report(ArrayDatastore(images))
    assert [(f.check, f.files) for f in report.findings] == [("outlier", ("#7",))]
    assert "mean" in report.findings[0].message


def test_a_classifier_lists_the_labels_it_disagrees_with():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2)).astype(np.float32)
    labels = np.where(x[:, 0] > 0, "right", "left")
    wrong = [3, 11, 20]
    labels[wrong] = np.where(labels[wrong] == "right", "left", "right")
    net = Network([L.FeatureInput(2), L.Dense(2), L.Softmax()], classes=["left", "right"])
    with torch.no_grad():  # a network that is sure: class by the sign of x0
        net.initialize()
        dense = next(m for m in net.modules() if isinstance(m, L.Dense))
        dense.weight.copy_(torch.tensor([[-50.0, 0.0], [50.0, 0.0]]))
        dense.bias.zero_()
    confident = np.abs(x[:, 0]) * 100 > np.log(0.9 / 0.1)
    report = quality_report(ArrayDatastore(x, targets=labels), network=net)
    flagged = [int(f.files[0][1:]) for f in report.by_check("label-disagreement")]
    assert flagged == [i for i in wrong if confident[i]] and len(flagged) >= 2


@pytest.mark.parametrize(
    ("option", "value"),
    [("near_duplicate_distance", 65), ("near_duplicate_distance", 2.5), ("outlier_z", 0),
     ("min_class_fraction", 1.5), ("confidence", 0), ("near_duplicate_difference", -1)],
)  # fmt: skip
def test_bad_options_name_the_option(option, value):
    with pytest.raises(OptionError, match=f"`{option}`.*Received: {option}={value!r}"):
        quality_report(ArrayDatastore(np.zeros((3, 2))), **{option: value})


def test_bad_data_is_named(tmp_path):
    with pytest.raises(DataError, match="cannot find folder '.*nowhere'"):
        quality_report(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no image files"):
        quality_report(tmp_path)
    with pytest.raises(OptionError, match="Received: int"):
        quality_report(3)
    with pytest.raises(OptionError, match="`network` must be a torch.nn.Module"):
        quality_report(ArrayDatastore(np.zeros((3, 2))), network="resnet")
    with pytest.raises(OptionError, match="unknown check 'dupes'"):
        quality_report(ArrayDatastore(np.zeros((3, 2)))).by_check("dupes")
