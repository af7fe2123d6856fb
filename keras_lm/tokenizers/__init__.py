"""Tokenizers: strings to ids and back, eagerly, in tf.data and in graphs.

`byte` (lossless, 259 ids), `char` (learned characters), `wordpiece` and
`sentencepiece` (subword vocabularies learned from the corpus); see
`train_tokenizer` for training any of them from files.
"""

from keras_lm.tokenizers.byte_tokenizer import ByteTokenizer
from keras_lm.tokenizers.char_tokenizer import CharTokenizer
from keras_lm.tokenizers.hub_tokenizer import HubTokenizer
from keras_lm.tokenizers.id_tokenizer import IdTokenizer
from keras_lm.tokenizers.normalization import NORMALIZATIONS
from keras_lm.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_lm.tokenizers.tokenizer import TOKENIZER_FILE, Tokenizer
from keras_lm.tokenizers.wordpiece_tokenizer import WordPieceTokenizer
from keras_lm.tokenizers.loading import (
    TOKENIZER_CLASSES,
    TOKENIZERS,
    load_tokenizer,
    train_tokenizer,
)
