"""Rows of a `.jsonl`, `.csv` or `.tsv` file, and their validation split: one reader for all.

Prompt -> response pairs (`keras_lm.data.pairs`) and labelled texts
(`keras_lm.adaptation.labeled_data`) are both such files; this module reads
them the same way and leaves the fields to its callers:

- the extension picks the format: JSON Lines (one object per line, blank
  lines skipped) or a table with a header row (`csv` module, a quoted field
  may span lines);
- the file must be UTF-8 (a byte-order mark is dropped, as spreadsheets
  write one); a bad byte is an error naming its line;
- a JSON line that is not valid JSON, or not an object, and a malformed
  table are errors naming their line;
- a table row shorter than the header lacks the missing columns (as a JSON
  object without the key would).

Every error is a `UsageError` naming `argument` (the caller's argument:
`data`, `val_data`, ...), the line and the file.

`hash_split` is the one validation split of rows: a row validates when the
hash of its fields (`row_hash.hash_fraction`) is below `VALIDATION_FRACTION`
(or the share given), so the split is the same on every machine, does not
move when rows are added or reordered, and identical rows fall on the same
side.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "rows.csv")
>>> _ = open(path, "w").write('text,label\\n"purr, purr",cat\\nwoof,dog\\n')
>>> read_row_file(path)
[(2, {'text': 'purr, purr', 'label': 'cat'}), (3, {'text': 'woof', 'label': 'dog'})]
>>> train, validation = hash_split(range(100), lambda i: [str(i)])
>>> len(train) + len(validation), 0 < len(validation) < 20
(100, True)
"""

import codecs
import csv
import io
import json
import os

from keras_lm.data.row_hash import hash_fraction
from keras_lm.errors import UsageError

ROW_FORMATS = (".jsonl", ".csv", ".tsv")
# The share of rows held out for validation when no validation data is given
# (pairs and labelled texts alike).
VALIDATION_FRACTION = 0.1


def read_row_file(path, argument="data", what="a row file"):
    """`[(line, fields)]`: each row of `path` with its line (1-based) and its fields (a dict).

    `what` names the kind of file in the error for a wrong extension ("a
    pair file"). A table row's line is the line it ends on, the header
    being line 1. No rows at all is not an error here (the caller says
    what was expected).
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in ROW_FORMATS:
        raise UsageError(f"{argument}: {path!r} is not {what}; use one of "
                         f"{', '.join(ROW_FORMATS)}", argument=argument)
    if not os.path.isfile(path):
        raise UsageError(f"{argument}: {path!r} does not exist", argument=argument)
    with open(path, "rb") as f:
        text = _decode(f.read(), path, argument)
    if extension == ".jsonl":
        return list(_jsonl_rows(text, path, argument))
    return list(_table_rows(text, "\t" if extension == ".tsv" else ",", path, argument))


def _decode(raw, path, argument):
    """`raw` as text (a UTF-8 byte-order mark dropped), or a UsageError naming the bad line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise UsageError(f"{argument}: line {line} of {path!r} is not UTF-8 text "
                         f"({error.reason}: byte {raw[error.start]:#04x})",
                         argument=argument) from None
    return text.removeprefix(codecs.BOM_UTF8.decode("utf-8"))


def _jsonl_rows(text, path, argument):
    # Lines end as a file opened with newline="" ends them (\n, \r\n or \r), not
    # at the other breaks of str.splitlines (U+2028 may stand in a JSON string).
    for number, line in enumerate(io.StringIO(text, newline=""), 1):
        if not line.strip():
            continue
        try:  # without its line break, so that the column of an error is on the line
            row = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            raise UsageError(f"{argument}: line {number} of {path!r} is not valid JSON "
                             f"({error.msg}, column {error.colno})", argument=argument) from None
        if not isinstance(row, dict):
            raise UsageError(f"{argument}: line {number} of {path!r} is not a JSON object, got "
                             f"{type(row).__name__}", argument=argument)
        yield number, row


def _table_rows(text, delimiter, path, argument):
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            # A short row leaves its missing fields None, a long one puts the
            # surplus under None: both dropped, so a missing field is a missing key.
            yield reader.line_num, {k: v for k, v in row.items()
                                    if k is not None and v is not None}
    except csv.Error as error:  # the csv reader's count: DictReader's lags one row behind
        raise UsageError(f"{argument}: line {reader.reader.line_num} of {path!r} is malformed "
                         f"({error})", argument=argument) from None


def holds_out(fields, fraction=VALIDATION_FRACTION):
    """Whether a row with these `fields` (strings) is a validation row.

    Example:
    >>> holds_out(["a", "b"]) == holds_out(("a", "b"))
    True
    """
    return hash_fraction(*fields) < fraction


def hash_split(rows, fields, fraction=VALIDATION_FRACTION):
    """`(train, validation)`: the `rows` whose `fields(row)` hold out validate, in order.

    Only the rule; what happens when one side is empty (too few rows) is
    the caller's, since it depends on what the rows are.
    """
    train, validation = [], []
    for row in rows:
        (validation if holds_out(fields(row), fraction) else train).append(row)
    return train, validation
