"""Smoke test of examples/label_to_train.py at reduced size: the predictions reach the CSV,
the review fixes wrong ones through relabel, and the reopened folder holds every label."""

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


def test_label_to_train_example_fixes_labels_and_retrains(run_example, capsys):
    r = run_example("label_to_train.py", "--images", "400", "--labelled", "0.25",
                    "--review", "20", "--epochs", "8")  # fmt: skip
    assert (r["train_images"], r["labelled_by_hand"], r["predicted"]) == (320, 80, 240)
    assert 0 < r["fixed"] <= r["reviewed"] == 20
    assert r["wrong_labels_left"] == r["wrong_predictions"] - r["fixed"]  # fixes reached the CSV
    assert r["wrong_predictions"] < 0.5 * r["predicted"]  # chance: 90% wrong
    assert r["test_accuracy_hand_labels"] > 0.6 and r["test_accuracy_all_labels"] > 0.6
    assert "retrained on all labels" in capsys.readouterr().out
