"""Character tokenizer with a vocabulary learned from the corpus."""

import collections

import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.tokenizers.normalization import normalize_text
from keras_lm.tokenizers.text_sample import sample_text
from keras_lm.tokenizers.tokenizer import BOS, EOS, PAD, UNK, Tokenizer

_REPLACEMENT = "\ufffd"
_SPECIALS = (PAD, BOS, EOS, UNK)


class CharTokenizer(Tokenizer):
    """One id per Unicode character; unseen characters become `<unk>`.

    Ids 0-3 are `<pad>`, `<bos>`, `<eos>`, `<unk>`; characters follow. Invalid
    UTF-8 decodes to U+FFFD, which is never in the vocabulary, so it maps to
    `<unk>` (and `<unk>` decodes back to U+FFFD).

    Example:
    >>> tokenizer = CharTokenizer(vocabulary=["a", "b"])
    >>> tokenizer.encode("abc").numpy().tolist()
    [4, 5, 3]
    >>> tokenizer.decode_text([4, 5, 3])
    'ab\\ufffd'
    """

    kind = "char"

    def __init__(self, vocabulary, name=None, normalize="none"):
        vocabulary = list(vocabulary)
        bad = [c for c in vocabulary if not isinstance(c, str) or len(c) != 1]
        if bad or len(set(vocabulary)) != len(vocabulary) or _REPLACEMENT in vocabulary:
            raise UsageError(
                "vocabulary must hold distinct single characters (not U+FFFD), "
                f"got {bad[:3] or 'duplicates or U+FFFD'}", argument="vocabulary")
        self.vocabulary = vocabulary
        pieces = [b"", b"", b"", _REPLACEMENT.encode()]
        pieces += [c.encode("utf-8", "surrogatepass") for c in vocabulary]
        special_ids = {t: i for i, t in enumerate(_SPECIALS)}
        super().__init__(pieces, special_ids, name=name, normalize=normalize)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(pieces[len(_SPECIALS):], tf.string),
                tf.range(len(_SPECIALS), len(pieces), dtype=tf.int32),
            ),
            default_value=special_ids[UNK],
        )

    def _encode_flat(self, text):
        chars = tf.strings.unicode_split(text, "UTF-8", errors="replace")
        return tf.ragged.map_flat_values(self._table.lookup, chars)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary}

    @classmethod
    def train(cls, files, max_vocabulary_size=1024, max_bytes=64 << 20, normalize="none"):
        """Learns the most frequent characters of (a bounded sample of) files.

        Reads at most `max_bytes`, a block from each of files spread over the
        list, so a huge corpus costs bounded time and memory. Ties are broken
        by code point, so the result is deterministic.
        """
        if max_vocabulary_size <= len(_SPECIALS):
            raise UsageError(
                f"vocabulary_size={max_vocabulary_size} leaves no room for characters beside "
                f"the {len(_SPECIALS)} special tokens", argument="vocabulary_size")
        sample = sample_text(files, max_bytes)
        counts = collections.Counter()
        for chunk in sample.chunks:
            counts.update(normalize_text(chunk, normalize))
        counts.pop(_REPLACEMENT, None)
        if not counts:
            raise UsageError("cannot learn a character vocabulary: the files hold no text")
        ranked = sorted(counts, key=lambda c: (-counts[c], c))
        return cls(sorted(ranked[: max_vocabulary_size - len(_SPECIALS)]), normalize=normalize)
