"""Tokenizers: strings to ids and back, eagerly, in tf.data and in graphs."""

from keras_lm.tokenizers.byte_tokenizer import ByteTokenizer
from keras_lm.tokenizers.char_tokenizer import CharTokenizer
from keras_lm.tokenizers.tokenizer import Tokenizer, load_tokenizer

TOKENIZERS = ("byte", "char")
