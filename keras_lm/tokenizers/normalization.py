"""Text normalisation before tokenising, the same in graphs and in plain Python.

- `none`: the text as it is;
- `nfkc`: Unicode NFKC (compatibility characters folded: `ﬁ` -> `fi`, full-width
  letters -> ASCII, ...);
- `nfkc_lower`: NFKC, then full case folding (`ß` -> `ss`): tensorflow-text's
  `normalize_utf8` + `case_fold_utf8` in graphs, `unicodedata` NFKC +
  `str.casefold` in Python (equal on the texts we test; ICU's case folding
  also drops default-ignorable code points such as U+200B).

The graph form (`normalize_graph`) runs in `tf.data`, in training and in the
exported SavedModel; the Python form (`normalize_text`) in the LiteRT runner.

Example:
>>> normalize_text("Ｆｕｌｌ ﬁ", "nfkc_lower")
'full fi'
"""

import unicodedata

import tensorflow as tf

from keras_lm.errors import UsageError

NORMALIZATIONS = ("none", "nfkc", "nfkc_lower")


def check_normalization(normalize, argument="normalize"):
    if normalize not in NORMALIZATIONS:
        raise UsageError(f"{argument} must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}",
                         argument=argument)
    return normalize


def normalize_graph(text, normalize):
    """`text` (a string tensor, any shape) normalised with TensorFlow ops."""
    if normalize == "none":
        return text
    # Lazy: tensorflow_text's custom ops load only when a run normalises.
    import tensorflow_text as tf_text

    # ICU rejects invalid UTF-8: replace it (with U+FFFD) first.
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    text = tf_text.normalize_utf8(text, "NFKC")
    return tf_text.case_fold_utf8(text) if normalize == "nfkc_lower" else text


def normalize_text(text, normalize):
    """`text` (a Python str) normalised as `normalize_graph` does."""
    if normalize == "none":
        return text
    text = unicodedata.normalize("NFKC", text)
    return text.casefold() if normalize == "nfkc_lower" else text
