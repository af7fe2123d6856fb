"""WordPiece tokenizer, learned from the corpus, lossless on its alphabet.

The vocabulary is learned with keras-hub's `compute_word_piece_vocabulary`
and encoding runs tensorflow-text's `FastWordpieceTokenizer` (what
keras-hub's `WordPieceTokenizer` wraps). We split words ourselves, because
keras-hub's pre-tokenizer drops whitespace (its `detokenize` joins words with
single spaces): code indentation and line breaks would be lost. Our split
keeps every character:

- a word is a run of ASCII letters, digits and `_`;
- a run of whitespace is one word (`"\\n    "` is a common piece in code);
- any other character is a word of its own (punctuation, non-ASCII).

Each word becomes the longest vocabulary pieces that spell it (`##` marks a
piece inside a word), so concatenating the pieces' text restores the input;
a word with a character outside the vocabulary becomes `<unk>` (decoded as
U+FFFD). Ids 0-3 are `<pad>`, `<bos>`, `<eos>`, `<unk>`.

Example:
>>> tokenizer = WordPieceTokenizer(["<pad>", "<bos>", "<eos>", "<unk>",
...     "d", "e", "f", "##e", "##f", " ", "(", "def"])
>>> ids = tokenizer.encode("def (ef")
>>> ids.numpy().tolist(), tokenizer.decode_text(ids)
([11, 9, 10, 5, 8], 'def (ef')
"""

import logging

import keras_hub
import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.tokenizers.normalization import normalize_text
from keras_lm.tokenizers.text_sample import sample_text
from keras_lm.tokenizers.tokenizer import BOS, EOS, PAD, UNK, Tokenizer

SPECIALS = (PAD, BOS, EOS, UNK)
SUFFIX = "##"
# Words: what `split_words` keeps apart. RE2 (graph) and Python's `re` with
# ASCII classes read these patterns the same way.
WHITESPACE = " \t\n\r\f"
SPLIT_PATTERN = rf"[{WHITESPACE}]+|[^0-9A-Za-z_{WHITESPACE}]"
# A longer word is `<unk>` (the matcher's cost grows with word length).
MAX_BYTES_PER_WORD = 200
DEFAULT_VOCABULARY_SIZE = 4096
TRAINING_SAMPLE_BYTES = 1 << 20


def split_words(text):
    """Splits a string tensor (any rank) into a ragged tensor of words, keeping every byte."""
    import tensorflow_text as tf_text

    return tf_text.regex_split(text, SPLIT_PATTERN, SPLIT_PATTERN)


class WordPieceTokenizer(Tokenizer):
    """Words split as above, then WordPiece over a learned vocabulary (see module doc)."""

    kind = "wordpiece"

    def __init__(self, vocabulary, name=None, normalize="none"):
        import tensorflow_text as tf_text

        vocabulary = list(vocabulary)
        if vocabulary[: len(SPECIALS)] != list(SPECIALS) or len(set(vocabulary)) != len(vocabulary):
            raise UsageError(
                f"vocabulary must start with {', '.join(SPECIALS)} and hold distinct pieces, "
                f"got {vocabulary[:4]}", argument="vocabulary")
        self.vocabulary = vocabulary
        pieces = [b"", b"", b"", "\ufffd".encode()]
        pieces += [(p[len(SUFFIX):] if p.startswith(SUFFIX) else p).encode() for p in vocabulary[4:]]
        super().__init__(pieces, {t: i for i, t in enumerate(SPECIALS)}, name=name, normalize=normalize)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocabulary,
            suffix_indicator=SUFFIX,
            max_bytes_per_word=MAX_BYTES_PER_WORD,
            token_out_type=tf.int32,
            unknown_token=UNK,
            no_pretokenization=True,  # our words, whitespace included
            support_detokenization=False,
        )

    def _encode_flat(self, text):
        # tensorflow-text needs valid UTF-8; invalid bytes become U+FFFD.
        text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
        words = split_words(text)  # (batch, words)
        pieces = self._wordpiece.tokenize(words.flat_values)  # (all words, pieces)
        return tf.RaggedTensor.from_row_splits(
            pieces.flat_values, tf.gather(pieces.row_splits, words.row_splits)
        )

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary}

    @classmethod
    def train(cls, files, vocabulary_size=DEFAULT_VOCABULARY_SIZE, normalize="none",
              max_bytes=TRAINING_SAMPLE_BYTES):
        """Learns a vocabulary of at most `vocabulary_size` pieces from a sample of `files`.

        Raises UsageError when `vocabulary_size` cannot hold the specials
        and the sample's alphabet (each character alone and as `##` suffix).
        Logs a warning when the sample allows fewer pieces than asked.
        """
        sample = sample_text(files, max_bytes)
        texts = [normalize_text(t, normalize) for t in sample.chunks]
        texts = [t for t in texts if t]
        if not texts:
            raise UsageError("cannot learn a WordPiece vocabulary: the files hold no text")
        alphabet = set("".join(texts)) - {"\ufffd"}
        needed = len(SPECIALS) + 2 * len(alphabet)
        if vocabulary_size < needed:
            raise UsageError(
                f"vocabulary_size={vocabulary_size} is too small for WordPiece on this corpus: "
                f"{len(SPECIALS)} special tokens + {len(alphabet)} characters, each alone and as "
                f"a ## suffix, need {needed}", argument="vocabulary_size")
        words = tf.data.Dataset.from_tensor_slices(texts).map(split_words)
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            words, vocabulary_size, split=False, lowercase=False, strip_accents=False,
            suffix_indicator=SUFFIX, reserved_tokens=list(SPECIALS),
        )
        if len(vocabulary) < vocabulary_size:
            logging.getLogger("keras_lm").warning(
                "vocabulary_size=%d: the sample (%d bytes) gave %d WordPiece pieces; using them",
                vocabulary_size, sample.bytes_read, len(vocabulary),
            )
        return cls(vocabulary, normalize=normalize)
