"""Label errors: confident learning finds flipped digits labels (given and out-of-fold
probabilities), agrees with cleanlab, and ImageDatastore.relabel writes the fixes back."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.data import ArrayDatastore, ImageDatastore
from deeptoolbox.datasets import digits, write_image_folder
from deeptoolbox.errors import DataError, FileWriteError, MissingDependencyError, OptionError
from deeptoolbox.quality import (
    confident_learning_issues,
    cross_val_probabilities,
    find_label_issues,
    stratified_folds,
)
from deeptoolbox.training import TrainingOptions


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def flipped_digits(n: int | None = None, fraction: float = 0.05, seed: int = 0):
    """Digits features, true labels, labels with ``fraction`` flipped, and the flipped rows."""
    images, labels = digits()
    x = images.reshape(len(images), -1)[:n].astype(np.float32)
    truth = np.asarray(labels).astype(int)[:n]
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(truth), int(round(fraction * len(truth))), replace=False)
    noisy = truth.copy()
    noisy[flipped] = (truth[flipped] + rng.integers(1, 10, len(flipped))) % 10
    return x, truth, noisy, flipped


@pytest.fixture(scope="module")
def given_probabilities():
    x, truth, noisy, flipped = flipped_digits()
    p = cross_val_predict(LogisticRegression(max_iter=500), x, noisy, cv=5, method="predict_proba")
    return noisy, flipped, p


def _recovered(issues, flipped) -> float:
    return len(set(issues.top(len(flipped))) & set(flipped.tolist())) / len(flipped)


@pytest.mark.parametrize("method", ["prune_by_noise_rate", "confident_learning"])
def test_top_k_recovers_the_flipped_digits_from_given_probabilities(given_probabilities, method):
    noisy, flipped, p = given_probabilities
    issues = find_label_issues(noisy, p, method=method)
    assert len(flipped) == 90 and issues.method == method and issues.engine == "cleanlab"
    assert _recovered(issues, flipped) >= 0.8  # measured: 0.90 (the same ranking for both)
    flagged = set(issues.issues)
    assert len(flagged & set(flipped.tolist())) >= 0.7 * len(flagged)  # measured: 0.73 and 0.87
    worst = issues.to_records(3)
    assert [r["rank"] for r in worst] == [0, 1, 2]
    assert worst[0]["quality"] <= worst[1]["quality"] <= worst[2]["quality"]
    assert worst[0]["quality"] == pytest.approx(p[worst[0]["index"], noisy[worst[0]["index"]]])


def test_the_built_in_rule_is_cleanlabs_confident_learning_filter(given_probabilities):
    from cleanlab.filter import find_label_issues as cleanlab_find

    noisy, _, p = given_probabilities
    ours = confident_learning_issues(noisy, p)
    reference = cleanlab_find(noisy, p, filter_by="confident_learning")
    assert ours.sum() > 50 and np.array_equal(ours, reference)


def test_without_cleanlab_the_built_in_rule_runs(given_probabilities, monkeypatch):
    noisy, flipped, p = given_probabilities
    monkeypatch.setitem(sys.modules, "cleanlab", None)  # importing it raises ImportError
    issues = find_label_issues(noisy, p)
    assert (issues.engine, issues.method) == ("builtin", "confident_learning")
    assert _recovered(issues, flipped) >= 0.8
    with pytest.raises(MissingDependencyError, match="cleanlab"):
        find_label_issues(noisy, p, method="prune_by_noise_rate")


def _mlp():
    return Network([L.FeatureInput(64), L.Dense(64), L.ReLU(), L.Dense(10), L.Softmax()])


def test_out_of_fold_probabilities_by_cross_training_find_the_flips():
    x, truth, noisy, flipped = flipped_digits()
    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=15,
                              mini_batch_size=64, verbose=False, seed=0)  # fmt: skip
    p = cross_val_probabilities(_mlp, (torch.from_numpy(x / 16), torch.from_numpy(noisy)),
                                folds=5, options=options)  # fmt: skip
    assert p.shape == (len(x), 10) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert (p.argmax(axis=1) == truth).mean() > 0.9  # the networks learn despite the flips
    assert _recovered(find_label_issues(noisy, p), flipped) >= 0.8  # measured: 0.88


def test_out_of_fold_means_no_network_scores_what_it_trained_on():
    """Random labels: networks that memorise their training folds score held-out rows at
    chance, which in-sample predictions would not."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(120, 32)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 2, 120))

    def make():
        return Network([L.FeatureInput(32), L.Dense(256), L.ReLU(), L.Dense(2), L.Softmax()])

    options = TrainingOptions(solver="adam", initial_learn_rate=0.01, max_epochs=60,
                              mini_batch_size=32, verbose=False, seed=0)  # fmt: skip
    p = cross_val_probabilities(make, (x, y), folds=3, options=options, seed=1)
    assert (p.argmax(axis=1) == y.numpy()).mean() < 0.65
    from deeptoolbox.inference import classify
    from deeptoolbox.training import train

    net = train(make(), (x, y), "crossentropy", options).network
    assert (classify(net, x)[1].argmax(dim=1) == y).float().mean() > 0.95


def test_stratified_folds_deal_each_class_evenly():
    labels = np.repeat([0, 1, 2], [10, 7, 3])
    fold = stratified_folds(labels, 3, seed=4)
    for value in (0, 1, 2):
        counts = np.bincount(fold[labels == value], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(fold, stratified_folds(labels, 3, seed=4))


@pytest.fixture
def flipped_folder(tmp_path):
    x, truth, noisy, flipped = flipped_digits(n=400)
    images = x.reshape(-1, 1, 8, 8) / 16
    folder = write_image_folder(tmp_path / "digits", images, noisy.astype(str))
    ds = ImageDatastore(folder)
    order = [int(os.path.basename(f).split(".")[0]) for f in ds.files]  # written as 00012.png
    p = cross_val_predict(LogisticRegression(max_iter=500), x[order], noisy[order], cv=5,
                          method="predict_proba")  # fmt: skip
    return folder, ds, p, truth[order], flipped


def test_relabel_moves_the_suggested_fixes_between_class_folders(flipped_folder):
    folder, ds, p, truth, flipped = flipped_folder
    issues = find_label_issues(ds, p)
    assert issues.names[:3] == ds.files[:3]
    fixes = issues.relabels(len(flipped))
    assert all(f in ds.files for f in fixes)
    before = (ds.labels == truth.astype(str)).mean()
    moved = ds.relabel(fixes)
    changed = {f for f, label in fixes.items() if not f.endswith(f"/{label}/{os.path.basename(f)}")}
    assert set(moved) == changed and all(os.path.exists(new) for new in moved.values())
    assert not any(os.path.exists(old) for old in moved)
    reread = ImageDatastore(folder)
    assert sorted(reread.files) == sorted(ds.files)
    after = np.array([os.path.basename(os.path.dirname(f)) for f in reread.files])
    by_name = dict(zip(ds.files, truth.astype(str), strict=True))
    accuracy_after = np.mean([a == by_name[f] for f, a in zip(reread.files, after, strict=True)])
    assert accuracy_after > before + 0.03  # measured: 0.95 -> 0.99
    assert list(ds.labels) == [by_label for by_label in (os.path.basename(os.path.dirname(f))
                                                        for f in ds.files)]  # fmt: skip


def test_relabel_checks_everything_before_moving_anything(flipped_folder):
    folder, ds, _, _, _ = flipped_folder
    first, second = ds.files[0], ds.files[1]
    with pytest.raises(DataError, match="'nowhere.png' is not a file of this datastore"):
        ds.relabel({first: "3", "nowhere.png": "4"})
    with pytest.raises(DataError, match=r"class 'eleven' is not one of the datastore's classes"):
        ds.relabel({first: "3", second: "eleven"})
    clash = os.path.join(folder, "7", os.path.basename(first))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(clash)
    with pytest.raises(DataError, match="already has that name there. Nothing was moved"):
        ds.relabel({second: "3", first: "7"})
    assert os.path.exists(first) and os.path.exists(second)  # nothing moved
    with pytest.raises(OptionError, match="give a dict"):
        ds.relabel([first])


def test_a_failed_move_puts_the_moved_files_back(flipped_folder, monkeypatch):
    from deeptoolbox.data import _relabel

    _, ds, _, _, _ = flipped_folder
    labels = list(ds.labels)
    files = ds.files[:3]
    changes = {f: "0" if labels[k] != "0" else "1" for k, f in enumerate(files)}
    real, calls = _relabel._move, []

    def failing(source, target):
        calls.append(source)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(source, target)

    monkeypatch.setattr(_relabel, "_move", failing)
    with pytest.raises(FileWriteError, match="moved back; nothing changed"):
        ds.relabel(changes)
    assert all(os.path.exists(f) for f in files) and list(ds.labels) == labels


def test_relabel_with_given_labels_changes_the_datastore_only(tmp_path):
    for k in range(3):
        Image.fromarray(np.full((4, 4), 40 * k, np.uint8)).save(tmp_path / f"{k}.png")
    ds = ImageDatastore(tmp_path, labels=["a", "a", "b"])
    view = ds.subset([2, 0])
    assert ds.relabel({str(tmp_path / "0.png"): "b"}) == {}
    assert list(ds.labels) == ["b", "a", "b"] and list(view.labels) == ["b", "b"]
    assert int(ds[0][1]) == 1 and sorted(os.listdir(tmp_path)) == ["0.png", "1.png", "2.png"]
    with pytest.raises(DataError, match="no labels"):
        ImageDatastore(tmp_path, labels=None).relabel({str(tmp_path / "0.png"): "b"})


def test_the_grid_of_the_worst(given_probabilities, tmp_path):
    noisy, _, p = given_probabilities
    issues = find_label_issues(noisy, p)
    images = digits()[0]
    figure = issues.plot(images, tmp_path / "worst.png", k=12)
    assert len(figure.axes) == 16 and (tmp_path / "worst.png").stat().st_size > 5_000
    title = figure.axes[0].get_title()
    i = issues.top(1)[0]
    assert title.startswith(f"{noisy[i]} → {p[i].argmax()}")
    with pytest.raises(DataError, match="not an image"):
        issues.plot(np.zeros((len(noisy), 5)), k=1)


def test_labels_by_name_and_a_datastore():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.95, 0.05]])
    by_name = find_label_issues(np.array(["cat", "cat", "dog", "dog"]), p)
    assert by_name.relabels() == {"#3": "cat"}
    ds = ArrayDatastore(np.zeros((4, 2)), targets=["cat", "cat", "dog", "dog"])
    assert find_label_issues(ds, p).relabels() == {"#3": "cat"}


@pytest.mark.parametrize(
    ("labels", "p", "message"),
    [(np.array([0, 1]), np.array([[0.5, 0.6], [0.5, 0.5]]), "summing to 1"),
     (np.array([0, 1]), np.array([0.5, 0.5]), "must be \\(observations, classes\\)"),
     (np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), "3 labels but 2 rows"),
     (np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]), "must lie in \\[0, 2\\)")],
)  # fmt: skip
def test_bad_labels_or_probabilities_are_named(labels, p, message):
    with pytest.raises(DataError, match=message):
        find_label_issues(labels, p)


def test_bad_options_are_named():
    p = np.array([[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(DataError, match=r"labels \['owl'\] are not in `classes`"):
        find_label_issues(np.array(["cat", "owl"]), p, classes=["cat", "dog"])
    with pytest.raises(DataError, match="3 classes"):
        find_label_issues(np.array(["a", "b"]), p, classes=["a", "b", "c"])
    with pytest.raises(OptionError, match="`method` must be one of"):
        find_label_issues(np.array([0, 1]), p, method="best")
    x, y = torch.zeros(4, 64), torch.zeros(4, dtype=torch.long)
    with pytest.raises(OptionError, match="function that builds a new"):
        cross_val_probabilities(_mlp(), (x, y))
    with pytest.raises(OptionError, match="`folds` must be an int >= 2"):
        cross_val_probabilities(_mlp, (x, y), folds=1)
    with pytest.raises(DataError, match="cannot fill 5 folds"):
        cross_val_probabilities(_mlp, (x, y))
    with pytest.raises(DataError, match="class indices"):
        cross_val_probabilities(_mlp, (x, torch.zeros(4)), folds=2)
