"""Datastores: lazy, labelled, splittable collections of observations that feed training and
inference (every datastore is a ``torch.utils.data.Dataset``).

Example:
    >>> import numpy as np
    >>> from deeptoolbox import data
    >>> ds = data.ArrayDatastore(np.random.rand(8, 3), targets=list("abababab"))
    >>> train_ds, test_ds = ds.split(0.75, seed=0)
    >>> [b[0].shape for b in data.loader(train_ds, batch_size=4)]
    [torch.Size([4, 3]), torch.Size([2, 3])]
"""

from deeptoolbox.data._array import ArrayDatastore as ArrayDatastore
from deeptoolbox.data._augment import ImageAugmenter as ImageAugmenter
from deeptoolbox.data._base import CombinedDatastore as CombinedDatastore
from deeptoolbox.data._base import Datastore as Datastore
from deeptoolbox.data._base import combine as combine
from deeptoolbox.data._base import default_collate as default_collate
from deeptoolbox.data._base import loader as loader
from deeptoolbox.data._filestore import FileDatastore as FileDatastore
from deeptoolbox.data._image import IMAGE_EXTENSIONS as IMAGE_EXTENSIONS
from deeptoolbox.data._image import ImageDatastore as ImageDatastore
from deeptoolbox.data._quality import QualityReport as QualityReport
from deeptoolbox.data._quality import quality_report as quality_report
from deeptoolbox.data._quality_checks import CHECKS as QUALITY_CHECKS
from deeptoolbox.data._quality_checks import Finding as Finding
from deeptoolbox.data._sequence import PaddedCollate as PaddedCollate
from deeptoolbox.data._sequence import SequenceDatastore as SequenceDatastore
from deeptoolbox.data._sequence import SignalDatastore as SignalDatastore
from deeptoolbox.data._sequence import read_signal as read_signal
from deeptoolbox.data._tabular import TabularDatastore as TabularDatastore
from deeptoolbox.data._text import TextDatastore as TextDatastore
from deeptoolbox.data._text import Tokenizer as Tokenizer
from deeptoolbox.errors import DataError as DataError

__all__ = [
    "Datastore",
    "ArrayDatastore",
    "ImageDatastore",
    "ImageAugmenter",
    "IMAGE_EXTENSIONS",
    "SequenceDatastore",
    "SignalDatastore",
    "FileDatastore",
    "PaddedCollate",
    "TabularDatastore",
    "TextDatastore",
    "Tokenizer",
    "CombinedDatastore",
    "combine",
    "loader",
    "default_collate",
    "read_signal",
    "DataError",
    # data quality (issue 24)
    "quality_report",
    "QualityReport",
    "Finding",
    "QUALITY_CHECKS",
]
