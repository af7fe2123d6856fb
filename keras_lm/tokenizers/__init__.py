"""Tokenizers: strings to ids and back, eagerly, in tf.data and in graphs.

`byte` (lossless, 259 ids), `char` (learned characters), `wordpiece` and
`sentencepiece` (subword vocabularies learned from the corpus); see
`build_tokenizer` for training any of them from files.
"""

from keras_lm.tokenizers.byte_tokenizer import ByteTokenizer
from keras_lm.tokenizers.char_tokenizer import CharTokenizer
from keras_lm.tokenizers.id_tokenizer import IdTokenizer
from keras_lm.tokenizers.normalization import NORMALIZATIONS
from keras_lm.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_lm.tokenizers.tokenizer import TOKENIZER_FILE, Tokenizer, load_tokenizer
from keras_lm.tokenizers.wordpiece_tokenizer import WordPieceTokenizer

TOKENIZER_CLASSES = {
    cls.kind: cls
    for cls in (ByteTokenizer, CharTokenizer, WordPieceTokenizer, SentencePieceTokenizer)
}
TOKENIZERS = tuple(TOKENIZER_CLASSES)
# Loadable from tokenizer.json, but not a --tokenizer choice: `--task` runs make it.
TOKENIZER_CLASSES[IdTokenizer.kind] = IdTokenizer


def train_tokenizer(kind, files, vocabulary_size=None, normalize="none",
                    sentencepiece_model_type="unigram"):
    """A tokenizer of `kind`, its vocabulary learned from (a sample of) `files`.

    `vocabulary_size` is the size for `wordpiece`/`sentencepiece` (default
    4096) and the maximum for `char` (default 1024); `byte` takes none.

    Example:
    >>> train_tokenizer("byte", []).vocabulary_size
    259
    """
    from keras_lm.errors import UsageError

    if kind == "byte":
        if vocabulary_size is not None:
            raise UsageError(f"--vocab_size={vocabulary_size}: the byte tokenizer has 259 ids")
        return ByteTokenizer(normalize=normalize)
    size = {} if vocabulary_size is None else {"vocabulary_size": vocabulary_size}
    if kind == "char":
        return CharTokenizer.train(
            files, **({} if vocabulary_size is None else {"max_vocabulary_size": vocabulary_size}),
            normalize=normalize,
        )
    if kind == "wordpiece":
        return WordPieceTokenizer.train(files, normalize=normalize, **size)
    if kind == "sentencepiece":
        return SentencePieceTokenizer.train(
            files, model_type=sentencepiece_model_type, normalize=normalize, **size
        )
    raise UsageError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}")
