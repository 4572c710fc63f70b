"""confusion_chart: MATLAB's Normalization, RowSummary and ColumnSummary, checked against
scikit-learn's confusion matrix and per-class recall / precision."""

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix, precision_score, recall_score

from deeptoolbox.errors import OptionError
from deeptoolbox.training import ConfusionChart, confusion_chart

CLASSES = ["cat", "dog", "owl", "fox"]


def labels(seed=0, count=120):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 4, count)
    predicted = np.where(rng.random(count) < 0.6, true, rng.integers(0, 4, count))
    true[:3] = 0  # "fox" (3) is never the true class of these first three
    return [CLASSES[i] for i in true], [CLASSES[i] for i in predicted]


@pytest.mark.parametrize(
    ("normalize", "matlab", "axis"),
    [
        ("row", "row-normalized", 1),
        ("column", "column-normalized", 0),
        ("all", "total-normalized", None),
    ],
)
def test_normalizations_match_scikit_learn(normalize, matlab, axis):
    true, predicted = labels()
    sklearn_name = {"row": "true", "column": "pred", "all": "all"}[normalize]
    reference = confusion_matrix(true, predicted, labels=CLASSES, normalize=sklearn_name)
    for name in (normalize, matlab):
        chart = confusion_chart(true, predicted, classes=CLASSES, normalize=name)
        np.testing.assert_allclose(chart.normalized(), reference)
        assert chart.normalize == normalize
    counts = confusion_chart(true, predicted, classes=CLASSES)
    np.testing.assert_array_equal(
        counts.normalized(), confusion_matrix(true, predicted, labels=CLASSES)
    )
    assert (
        confusion_chart(true, predicted, classes=CLASSES, normalize="absolute").normalize == "none"
    )


def test_row_and_column_summaries_are_recall_and_precision():
    true, predicted = labels()
    chart = confusion_chart(true, predicted, classes=CLASSES, row_summary="row-normalized",
                            column_summary="column-normalized")  # fmt: skip
    recall = recall_score(true, predicted, labels=CLASSES, average=None)
    precision = precision_score(true, predicted, labels=CLASSES, average=None)
    np.testing.assert_allclose(chart.row_summary_values(), np.stack([recall, 1 - recall], 1))
    np.testing.assert_allclose(
        chart.column_summary_values(), np.stack([precision, 1 - precision], 1)
    )
    np.testing.assert_allclose(chart.recall, recall)
    np.testing.assert_allclose(chart.precision, precision)
    matrix = confusion_matrix(true, predicted, labels=CLASSES)
    absolute = confusion_chart(true, predicted, classes=CLASSES, row_summary="absolute",
                               column_summary="total-normalized")  # fmt: skip
    np.testing.assert_array_equal(
        absolute.row_summary_values(),
        np.stack([np.diag(matrix), matrix.sum(1) - np.diag(matrix)], 1),
    )
    columns = np.stack([np.diag(matrix), matrix.sum(0) - np.diag(matrix)], 1) / matrix.sum()
    np.testing.assert_allclose(absolute.column_summary_values(), columns)
    assert confusion_chart(true, predicted).row_summary_values() is None


def test_a_class_never_predicted_has_no_precision():
    chart = ConfusionChart(np.array([[2, 0], [1, 0]]), ["a", "b"], normalize="column")
    assert np.isnan(chart.precision[1]) and chart.recall.tolist() == [1.0, 0.0]
    assert np.isnan(chart.normalized()[:, 1]).all()


def test_summaries_are_drawn_beside_and_below_the_matrix(tmp_path):
    true, predicted = labels()
    plain = confusion_chart(true, predicted, path=tmp_path / "plain.png")
    both = confusion_chart(true, predicted, normalize="row", row_summary="row-normalized",
                           column_summary="column-normalized", path=tmp_path / "both.png")  # fmt: skip
    assert plain.matrix.sum() == both.matrix.sum() == 120
    with Image.open(tmp_path / "plain.png") as a, Image.open(tmp_path / "both.png") as b:
        assert b.size[0] > a.size[0] and b.size[1] > a.size[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.png", "plain.png"]


def test_bad_chart_options_name_the_option():
    with pytest.raises(OptionError, match="`normalize` must be 'none', 'row', 'column' or 'all'"):
        confusion_chart(["a"], ["a"], normalize="rows")
    with pytest.raises(OptionError, match="`row_summary` must be one of"):
        confusion_chart(["a"], ["a"], row_summary="column-normalized")
    with pytest.raises(OptionError, match="`column_summary`"):
        confusion_chart(["a"], ["a"], column_summary=True)
