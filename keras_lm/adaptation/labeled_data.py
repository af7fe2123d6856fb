"""Labelled texts for a classifier: reading them, checking them, splitting them.

A label file is JSONL (one JSON object per line), CSV or TSV (a header row
naming the columns), chosen by its extension and read by
`keras_lm.data.rows.read_row_file` (as pair files are). Each row gives a text
(`text_key`) and a label (`label_key`); labels are kept as strings.
Python callers may also pass the rows themselves: dicts, or `(text, label)`
pairs. Every mistake is a `UsageError` naming the argument and, for a
file, the line.

Validation is a file of its own (`val_data`), or else a deterministic 10%
of the rows chosen by a hash of the row (`split_rows`, over
`keras_lm.data.rows.hash_split`): the same rows on every machine and run,
and identical rows always on the same side.

Example:
>>> rows = read_rows([("purr", "cat"), ("woof", "dog"), ("meow", "cat")])
>>> [(row.text, row.label, row.line) for row in rows][:2]
[('purr', 'cat', 1), ('woof', 'dog', 2)]
>>> label_set(rows)
['cat', 'dog']
"""

import dataclasses
import json
import os

from keras_lm.adaptation.stdlib_labels import BUILTIN_DATA
from keras_lm.data.row_hash import hash_fraction
from keras_lm.data.rows import ROW_FORMATS, VALIDATION_FRACTION, hash_split, read_row_file
from keras_lm.errors import UsageError
from keras_lm.io_utils import atomic_path

FORMATS = ROW_FORMATS


@dataclasses.dataclass(frozen=True)
class Row:
    """One labelled text; `line` is its line in the file (1-based), or its index + 1."""

    text: str
    label: str
    line: int


def read_rows(data, text_key="text", label_key="label", argument="data"):
    """The rows of `data`: a `.jsonl`/`.csv`/`.tsv` path, a list of dicts or pairs,
    the name of a built-in data set (`classify_stdlib`, see `stdlib_labels`), or
    a function returning rows.

    Raises `UsageError` (naming `argument`) for a missing file, an unknown
    extension, a malformed line, a missing key, an empty text or label, or
    no rows at all.
    """
    if isinstance(data, str) and data in BUILTIN_DATA:
        data = BUILTIN_DATA[data]()
    elif callable(data):  # a recipe's data: a function that makes the rows
        data = data()
    if isinstance(data, (str, os.PathLike)):
        rows = _read_file(os.fspath(data), text_key, label_key, argument)
        where = repr(os.fspath(data))
    else:
        rows = [_row(item, i + 1, text_key, label_key, argument, "row")
                for i, item in enumerate(data)]
        where = "the rows given"
    if not rows:
        raise UsageError(f"{argument}: no rows in {where}", argument=argument)
    return rows


def _read_file(path, text_key, label_key, argument):
    """The rows of a label file, read by `keras_lm.data.rows.read_row_file`."""
    return [_row(item, line, text_key, label_key, argument, f"{path}: line")
            for line, item in read_row_file(path, argument, "a label file")]


def _row(item, number, text_key, label_key, argument, where):
    if isinstance(item, (tuple, list)) and len(item) == 2:
        text, label = item
    elif isinstance(item, dict):
        for key, name in ((text_key, "text_key"), (label_key, "label_key")):
            if item.get(key) is None:
                found = ", ".join(map(repr, item)) or "none"
                raise UsageError(f"{argument}: {where} {number} has no {key!r} (the {name}); "
                                 f"it has {found}", argument=argument)
        text, label = item[text_key], item[label_key]
    else:
        raise UsageError(f"{argument}: {where} {number} must be an object with "
                         f"{text_key!r} and {label_key!r}, got {str(item)[:60]!r}",
                         argument=argument)
    if not isinstance(text, str):
        raise UsageError(f"{argument}: {where} {number}: the text must be a string, got "
                         f"{text!r}", argument=argument)
    label = str(label).strip()
    if not text.strip() or not label:
        empty = "text" if not text.strip() else "label"
        raise UsageError(f"{argument}: {where} {number}: empty {empty}", argument=argument)
    return Row(text, label, number)


def label_set(rows, argument="data"):
    """The sorted distinct labels of `rows`; at least two, or `UsageError`."""
    labels = sorted({row.label for row in rows})
    if len(labels) < 2:
        raise UsageError(f"{argument}: one class ({labels[0]!r}) in {len(rows)} rows: a "
                         "classifier needs at least two labels", argument=argument)
    return labels


def check_known_labels(rows, labels, argument="val_data", known_from="the training data"):
    """Raises `UsageError` at the first row whose label is not in `labels`."""
    known = set(labels)
    for row in rows:
        if row.label not in known:
            raise UsageError(f"{argument}: line {row.line}: label {row.label!r} never appears "
                             f"in {known_from} ({', '.join(labels)})", argument=argument)


def row_fraction(row):
    """A number in [0, 1) fixed by the row's text and label (SHA-256), for splitting.

    Example:
    >>> row_fraction(Row("purr", "cat", 1)) == row_fraction(Row("purr", "cat", 9))
    True
    """
    return hash_fraction(row.text, row.label)


def split_rows(rows, fraction=VALIDATION_FRACTION):
    """`(train, validation)`: the rows whose `row_fraction` is below `fraction` validate.

    Deterministic (a hash of the text and label, not a random draw).
    Validation rows whose label would then be missing from training go
    back to training (so every validation label was seen in training);
    if no row is left for validation, the one with the smallest hash
    whose label occurs twice or more is held out.

    Example:
    >>> rows = read_rows([(f"text {i}", "ab"[i % 2]) for i in range(40)])
    >>> train, validation = split_rows(rows)
    >>> len(train) + len(validation), 0 < len(validation) < 12
    (40, True)
    """
    train, validation = hash_split(rows, lambda row: (row.text, row.label), fraction)
    seen = {row.label for row in train}
    train += [row for row in validation if row.label not in seen]
    validation = [row for row in validation if row.label in seen]
    if not validation:
        counts = {}
        for row in train:
            counts[row.label] = counts.get(row.label, 0) + 1
        candidates = [row for row in train if counts[row.label] > 1]
        if candidates:
            held = min(candidates, key=row_fraction)
            validation = [held]
            train = [row for row in train if row is not held]
    train.sort(key=lambda row: row.line)
    return train, validation


def labeled_split(data, val_data=None, text_key="text", label_key="label"):
    """`(train_rows, val_rows, labels, validation)`: the rows of a classifier run, checked, split.

    `val_data` validates, or else `split_rows` holds out a tenth of `data`.
    `validation` describes the choice for `config.json`: `{"kind":
    "val_data", "path": ...}` or `{"kind": "hash_10_percent", ...}`.

    Example:
    >>> rows = [(f"text {i}", "ab"[i % 2]) for i in range(40)]
    >>> train, validation, labels, how = labeled_split(rows)
    >>> labels, how["kind"], len(train) + len(validation)
    (['a', 'b'], 'hash_10_percent', 40)
    """
    if data is None or (isinstance(data, str) and not data):
        raise UsageError("data: a classifier needs labelled texts (a .jsonl, .csv or .tsv file "
                         f"with {text_key!r} and {label_key!r}), got none", argument="data")
    rows = read_rows(data, text_key, label_key, argument="data")
    if val_data is not None:
        val_rows = read_rows(val_data, text_key, label_key, argument="val_data")
        labels = label_set(rows, argument="data")
        check_known_labels(val_rows, labels, argument="val_data",
                           known_from="the training data")
        validation = {"kind": "val_data", "rows": len(val_rows),
                      "path": describe_data(val_data)}
        return rows, val_rows, labels, validation
    label_set(rows, argument="data")  # one class is an error before any split
    train_rows, val_rows = split_rows(rows)
    if not val_rows:
        raise UsageError(f"data: {len(rows)} rows are too few to hold out validation rows; "
                         "add rows or give val_data", argument="data")
    labels = label_set(train_rows, argument="data")
    validation = {"kind": "hash_10_percent", "fraction": VALIDATION_FRACTION,
                  "rows": len(val_rows),
                  "rule": "rows whose SHA-256 of [text, label] (as JSON) read as a fraction of "
                          "2**64 is below the fraction"}
    return train_rows, val_rows, labels, validation


def write_rows(path, rows, text_key="text", label_key="label"):
    """Writes `rows` as JSONL, atomically (what a run keeps as its validation data)."""
    lines = [json.dumps({text_key: row.text, label_key: row.label}, ensure_ascii=False) + "\n"
             for row in rows]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(lines)


def describe_data(data):
    """How `config.json` records `data`: an absolute path, `builtin:NAME`, or None (rows)."""
    if isinstance(data, str) and data in BUILTIN_DATA:
        return f"builtin:{data}"
    if isinstance(data, (str, os.PathLike)):
        return os.path.abspath(data)
    if callable(data):
        return f"function:{getattr(data, '__name__', type(data).__name__)}"
    return None
