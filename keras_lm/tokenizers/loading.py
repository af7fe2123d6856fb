"""Making tokenizers by kind: training one from files, loading a saved one."""

import json
import os

from keras_lm.errors import UsageError
from keras_lm.tokenizers.byte_tokenizer import ByteTokenizer
from keras_lm.tokenizers.char_tokenizer import CharTokenizer
from keras_lm.tokenizers.hub_tokenizer import HubTokenizer
from keras_lm.tokenizers.id_tokenizer import IdTokenizer
from keras_lm.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_lm.tokenizers.wordpiece_tokenizer import WordPieceTokenizer

TOKENIZER_CLASSES = {
    cls.kind: cls
    for cls in (ByteTokenizer, CharTokenizer, WordPieceTokenizer, SentencePieceTokenizer)
}
TOKENIZERS = tuple(TOKENIZER_CLASSES)
# Loadable from tokenizer.json, but not a --tokenizer choice: `--task` runs make it.
TOKENIZER_CLASSES[IdTokenizer.kind] = IdTokenizer
# Loadable too: `keras-lm import` writes it for a pretrained keras-hub model.
TOKENIZER_CLASSES[HubTokenizer.kind] = HubTokenizer


def train_tokenizer(kind, files, vocabulary_size=None, normalize="none",
                    sentencepiece_model_type="unigram"):
    """A tokenizer of `kind`, its vocabulary learned from (a sample of) `files`.

    `vocabulary_size` is the size for `wordpiece`/`sentencepiece` (default
    4096) and the maximum for `char` (default 1024); `byte` takes none.

    Example:
    >>> train_tokenizer("byte", []).vocabulary_size
    259
    """
    if kind == "byte":
        if vocabulary_size is not None:
            raise UsageError(f"vocabulary_size={vocabulary_size}: the byte tokenizer has 259 ids", argument="vocabulary_size")
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
    raise UsageError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}", argument="tokenizer")


def load_tokenizer(path):
    """Loads a tokenizer saved with `Tokenizer.save`.

    Example:
    >>> import tempfile
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> path = os.path.join(tempfile.mkdtemp(), "tokenizer.json")
    >>> ByteTokenizer().save(path)
    >>> load_tokenizer(path).vocabulary_size
    259
    """
    if not os.path.isfile(path):
        raise UsageError(f"tokenizer file not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        kind = config.pop("kind")
        vocabulary_size = config.pop("vocabulary_size")
        special_ids = config.pop("special_ids")
        prompt_template = config.pop("prompt_template", None)
        tokenizer = TOKENIZER_CLASSES[kind].from_config(config)
        tokenizer.prompt_template = prompt_template
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        # RuntimeError: SentencePiece rejecting its model.
        raise UsageError(f"tokenizer file {path!r} is corrupt: {error}") from None
    if (tokenizer.vocabulary_size, tokenizer.special_ids) != (
        vocabulary_size,
        special_ids,
    ):
        raise UsageError(f"tokenizer file {path!r} is corrupt: ids do not match")
    return tokenizer
