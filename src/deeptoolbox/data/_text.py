"""Text: a word tokenizer with a vocabulary saved as JSON, and TextDatastore."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeptoolbox._atomic import atomic_open
from deeptoolbox._limits import read_limits
from deeptoolbox.data import _files
from deeptoolbox.data._array import as_targets
from deeptoolbox.data._sequence import _PaddedDatastore
from deeptoolbox.errors import DataError, DeepToolboxError, OptionError, ResourceLimitError

__all__ = ["Tokenizer", "TextDatastore"]

PAD, UNKNOWN = "<pad>", "<unk>"


class Tokenizer:
    """Split text into words and punctuation and map them to ids through a vocabulary.

    Id 0 is padding (``<pad>``) and id 1 an unknown word (``<unk>``); the vocabulary is
    learned by ``fit`` (most frequent first, ties alphabetical), at most ``max_tokens``
    entries, words seen at least ``min_count`` times. ``to_config()`` gives a JSON-safe
    dict (to store with a network's metadata); ``save``/``load`` write and read JSON.

    Example:
        >>> tok = Tokenizer().fit(["the cat sat", "the dog sat!"])
        >>> tok.encode("The cat ran.")
        [3, 5, 1, 1]
        >>> tok.decode(tok.encode("the dog"))
        'the dog'
    """

    def __init__(
        self,
        *,
        lowercase: bool = True,
        max_tokens: int | None = None,
        min_count: int = 1,
        pattern: str = r"\w+|[^\w\s]",
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 3):
            raise OptionError(
                f"Tokenizer: `max_tokens` must be an int >= 3 or None. Received: {max_tokens!r}."
            )
        if not isinstance(min_count, int) or min_count < 1:
            raise OptionError(
                f"Tokenizer: `min_count` must be a positive int. Received: {min_count!r}."
            )
        if not isinstance(lowercase, bool):
            raise OptionError(
                f"Tokenizer: `lowercase` must be True or False. Received: {lowercase!r}."
            )
        if not isinstance(pattern, str):
            raise OptionError(
                f"Tokenizer: `pattern` must be a regex string. Received: {pattern!r}."
            )
        try:
            self._regex = re.compile(pattern)
        except re.error as err:
            raise OptionError(f"Tokenizer: `pattern` is not a valid regex: {err}.") from err
        if self._regex.fullmatch(""):
            raise OptionError(
                f"Tokenizer: `pattern` {pattern!r} matches the empty string, so it would find "
                "empty tokens; it must match at least one character (default: r'\\w+|[^\\w\\s]')."
            )
        self.lowercase, self.max_tokens, self.min_count, self.pattern = (
            lowercase,
            max_tokens,
            min_count,
            pattern,
        )
        self.vocabulary: list[str] | None = None
        self._ids: dict[str, int] = {}
        if vocabulary is not None:
            self._set_vocabulary(list(vocabulary))

    def _set_vocabulary(self, vocabulary: list[str]) -> None:
        if vocabulary[:2] != [PAD, UNKNOWN] or len(set(vocabulary)) != len(vocabulary):
            raise DataError(
                f"Tokenizer: a vocabulary must start with {[PAD, UNKNOWN]} and list each token "
                f"once. Received a vocabulary starting {vocabulary[:4]}."
            )
        self.vocabulary = vocabulary
        self._ids = {t: i for i, t in enumerate(vocabulary)}

    @property
    def fitted(self) -> bool:
        """True once the tokenizer has a vocabulary."""
        return self.vocabulary is not None

    def tokens(self, text: str) -> list[str]:
        """The tokens of ``text`` (words and punctuation marks)."""
        return self._regex.findall(text.lower() if self.lowercase else text)

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Learn the vocabulary from ``texts``; returns ``self``."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.tokens(text))
        ranked = sorted(
            (t for t, c in counts.items() if c >= self.min_count), key=lambda t: (-counts[t], t)
        )
        limit = None if self.max_tokens is None else self.max_tokens - 2
        self._set_vocabulary([PAD, UNKNOWN, *ranked[:limit]])
        return self

    def _require_fit(self) -> None:
        if self.vocabulary is None:
            raise DataError("Tokenizer: no vocabulary yet. Call fit(texts) or load() first.")

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (1 for tokens outside the vocabulary)."""
        self._require_fit()
        return [self._ids.get(t, 1) for t in self.tokens(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Tokens of ``ids`` joined by spaces, padding dropped."""
        self._require_fit()
        vocabulary = self.vocabulary or []
        return " ".join(vocabulary[int(i)] for i in ids if int(i) != 0)

    def __len__(self) -> int:
        return 0 if self.vocabulary is None else len(self.vocabulary)

    def to_config(self) -> dict[str, Any]:
        """A JSON-safe description (options and vocabulary) that ``from_config`` rebuilds."""
        return {
            "lowercase": self.lowercase,
            "max_tokens": self.max_tokens,
            "min_count": self.min_count,
            "pattern": self.pattern,
            "vocabulary": self.vocabulary,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from ``to_config()``."""
        try:
            return cls(**config)
        except TypeError as err:
            raise DataError(f"Tokenizer: not a tokenizer config: {err}.") from err

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as JSON (through a temporary file, so a crash leaves no half file).

        Example:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "tok.json")
            >>> Tokenizer().fit(["a b"]).save(path); len(Tokenizer.load(path))
            4
        """
        with atomic_open(path, "w", encoding="utf-8") as stream:
            json.dump({"format": "deeptoolbox.Tokenizer", **self.to_config()}, stream)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer written by ``save``."""
        try:
            config = read_limits(None, "Tokenizer.load").load_json(
                Path(path).read_bytes(), f"Tokenizer: '{path}'"
            )
        except ResourceLimitError:
            raise
        except (OSError, ValueError) as err:
            raise DataError(f"Tokenizer: cannot read '{path}': {err}.") from err
        if not isinstance(config, dict) or config.pop("format", None) != "deeptoolbox.Tokenizer":
            raise DataError(f"Tokenizer: '{path}' is not a saved deeptoolbox Tokenizer.")
        pattern = config.get("pattern")
        if isinstance(pattern, str) and nested_repeat(pattern):
            raise DataError(
                f"Tokenizer: '{path}' holds the pattern {pattern!r}, which repeats a repeated "
                "part: such a regex can take exponential time on some texts, so a saved "
                "tokenizer may not use one (build it with Tokenizer(pattern=...) in your code if "
                "you trust it)."
            )
        try:
            return cls.from_config(config)
        except (DeepToolboxError, TypeError, ValueError, KeyError, AttributeError,
                re.error) as err:  # fmt: skip
            reason = str(err)
            while reason.startswith(("Tokenizer: ", "not a tokenizer config: ")):
                reason = reason.removeprefix("Tokenizer: ").removeprefix("not a tokenizer config: ")
            raise DataError(f"Tokenizer: '{path}' holds an invalid tokenizer: {reason}") from err


def nested_repeat(pattern: str) -> bool:
    r"""True when a regex repeats a part that itself repeats (``(\w+)+``, ``(a*)*``): the
    shape of patterns with catastrophic backtracking. Unparsable patterns are left to
    ``re.compile`` to report.

    Example:
        >>> nested_repeat(r"\w+|[^\w\s]"), nested_repeat(r"(\w+)+$")
        (False, True)
    """
    import re._parser as parser  # the parser behind re.compile

    try:
        parsed = parser.parse(pattern)
    except re.error:
        return False
    return _repeats(parsed, inside=False)


def _repeats(items: Any, inside: bool) -> bool:
    import re._constants as c

    repeats = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}
    for op, value in items:
        if op in repeats:
            _, high, body = value
            many = high is c.MAXREPEAT or high > 1
            if (many and inside) or _repeats(body, inside or many):
                return True
        elif any(_repeats(part, inside) for part in _parts(op, value, c)):
            return True
    return False


def _parts(op: Any, value: Any, c: Any) -> list:
    """The sub-patterns of a group, an alternation or a look-around."""
    if op is c.SUBPATTERN:
        return [value[-1]]
    if op is c.BRANCH:
        return list(value[1])
    if op in (c.ASSERT, c.ASSERT_NOT):
        return [value[1]]
    return []


def _read_text(path: str, remote: _files.Remote | None = None) -> str:
    try:
        return _files.read_bytes(path, remote).decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"TextDatastore: cannot read '{path}': {err}.") from err


class TextDatastore(_PaddedDatastore):
    """Texts as token-id sequences (MATLAB ``tokenizedDocument`` + ``wordEncoding``).

    ``ds[i]`` is an int64 (T,) tensor of token ids — ``(ids, class_index)`` with labels;
    batches are padded with id 0 (see :class:`PaddedCollate`), ready for an
    ``Embedding`` layer after ``SequenceInput(1)``.

    Args:
        texts: a list of strings. Use :meth:`from_files` for files.
        labels: one label per text, or None.
        tokenizer: a :class:`Tokenizer`; fitted on ``texts`` when it has no vocabulary
            (default: a new one). Keep it (``tokenizer.save``) to encode new text the same way.
        classes, sequence_length, padding, mask_as_input: as for SequenceDatastore.

    Example:
        >>> ds = TextDatastore(["good film", "bad plot, bad actors"], labels=["pos", "neg"])
        >>> ds.readall()["inputs"].tolist(), ds.classes
        ([[6, 5, 0, 0, 0], [2, 7, 3, 2, 4]], ['neg', 'pos'])
    """

    def __init__(
        self,
        texts: Sequence[str],
        labels: Sequence[Any] | np.ndarray | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        classes: Sequence[Any] | None = None,
        sequence_length: str | int = "longest",
        padding: str = "right",
        mask_as_input: bool = False,
    ) -> None:
        self._files: list[str] | None = None
        self._texts = list(texts)
        if not all(isinstance(t, str) for t in self._texts):
            raise DataError(
                "TextDatastore: `texts` must be strings. Use TextDatastore.from_files for files."
            )
        self._setup(labels, tokenizer, classes)
        self._set_padding(
            sequence_length=sequence_length,
            padding=padding,
            padding_value=0,
            mask_as_input=mask_as_input,
        )
        self._init_view()

    def _setup(self, labels: Any, tokenizer: Tokenizer | None, classes: Any) -> None:
        if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
            raise OptionError(
                f"TextDatastore: `tokenizer` must be a Tokenizer. Received: {type(tokenizer).__name__}."
            )
        self.tokenizer = tokenizer or Tokenizer()
        if not self.tokenizer.fitted:
            self.tokenizer.fit(self._text(j) for j in range(self._count()))
        self._labels, self._targets = None, None
        if labels is not None:
            self._targets, self._labels, self._classes = as_targets(
                "TextDatastore", labels, classes
            )
            if len(self._targets) != self._count():
                raise DataError(
                    f"TextDatastore: {self._count()} texts but {len(self._targets)} labels; "
                    "give one label per text."
                )

    @classmethod
    def from_files(
        cls,
        location: _files.Location,
        *,
        by: str = "file",
        labels: str | Sequence[Any] | None = "auto",
        extensions: Sequence[str] = (".txt",),
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
        **options: Any,
    ) -> TextDatastore:
        """Texts from files (MATLAB ``fileDatastore`` of text): one text per file
        (``by="file"``, read lazily; labels from folder names as for images) or per
        non-empty line (``by="line"``, lines held in memory). ``location`` may hold URLs,
        read with ``storage_options`` and cached in ``cache_dir`` (as for ImageDatastore).

        Example:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "lines.txt")
            >>> _ = open(path, "w").write("first line\\n\\nsecond line\\n")
            >>> len(TextDatastore.from_files(path, by="line", labels=None))
            2
        """
        if by not in ("file", "line"):
            raise OptionError(
                f"TextDatastore.from_files: `by` must be 'file' or 'line'. Received: {by!r}."
            )
        remote = _files.remote_access("TextDatastore", storage_options, cache_dir)
        files, roots = _files.list_files("TextDatastore", location, extensions, True, remote)
        if by == "line":
            lines = (_read_text(f, remote).splitlines() for f in files)
            texts = [line for part in lines for line in part if line.strip()]
            names = None if isinstance(labels, str) else labels
            return cls(texts, names, **options)
        values, _ = _files.resolve_labels(
            "TextDatastore", files, roots, labels, options.get("classes")
        )
        self = cls.__new__(cls)
        self._files, self._texts, self._remote = files, [], remote
        self._setup(values, options.pop("tokenizer", None), options.pop("classes", None))
        padding = {
            "sequence_length": "longest",
            "padding": "right",
            "mask_as_input": False,
            **options,
        }
        self._set_padding(padding_value=0, **padding)
        self._init_view()
        return self

    def _text(self, j: int) -> str:
        return self._texts[j] if self._files is None else _read_text(self._files[j], self._remote)

    def _count(self) -> int:
        return len(self._texts) if self._files is None else len(self._files)

    def _source_labels(self) -> np.ndarray | None:
        return self._labels

    def _load(self, j: int) -> Any:
        ids = torch.tensor(self.tokenizer.encode(self._text(j)), dtype=torch.int64)
        return ids if self._targets is None else (ids, self._targets[j])
