"""Label quality: likely label errors by confident learning, from out-of-fold predictions.

The data-quality report (corrupt files, duplicates, leakage, imbalance...) is
:func:`deeptoolbox.data.quality_report`; fixes go back with ``ImageDatastore.relabel``.

Example:
    >>> import numpy as np
    >>> from deeptoolbox import quality
    >>> labels = np.array([0, 0, 1, 1])
    >>> p = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    >>> quality.find_label_issues(labels, p).issues
    [1]
"""

from deeptoolbox.quality._cross_val import cross_val_probabilities as cross_val_probabilities
from deeptoolbox.quality._cross_val import stratified_folds as stratified_folds
from deeptoolbox.quality._label_issues import METHODS as METHODS
from deeptoolbox.quality._label_issues import LabelIssues as LabelIssues
from deeptoolbox.quality._label_issues import (
    confident_learning_issues as confident_learning_issues,
)
from deeptoolbox.quality._label_issues import find_label_issues as find_label_issues

__all__ = [
    "find_label_issues",
    "LabelIssues",
    "cross_val_probabilities",
    "stratified_folds",
    "confident_learning_issues",
    "METHODS",
]
