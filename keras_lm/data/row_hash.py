"""A row's place in a deterministic validation split: a hash of its fields.

Pair files (`data.pairs`) and label files (`adaptation.labeled_data`) hold
out the same way: a row validates when its hash fraction is below the
validation share, so the split is the same on every machine and does not
move when rows are added or reordered.

Example:
>>> hash_fraction("purr", "cat") == hash_fraction("purr", "cat")
True
>>> 0 <= hash_fraction("a", "b") < 1
True
"""

import hashlib
import json


def row_digest(*fields):
    """The SHA-256 digest of the row's fields (strings), as JSON."""
    return hashlib.sha256(json.dumps(list(fields)).encode("utf-8")).digest()


def hash_fraction(*fields):
    """A number in [0, 1) fixed by the row's fields."""
    return int.from_bytes(row_digest(*fields)[:8], "big") / 2.0**64
