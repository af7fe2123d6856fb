"""The base of our tokenizers: special ids, in-graph encode/decode, save/load."""


import numpy as np
import tensorflow as tf

from keras_lm.io_utils import write_json
from keras_lm.tokenizers.normalization import check_normalization, normalize_graph

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
# The file a run directory (and an export bundle) keeps its tokenizer in.
TOKENIZER_FILE = "tokenizer.json"


class Tokenizer(tf.Module):
    """Strings in, int32 ids out, and back, with TensorFlow ops only.

    Because encode/decode are TensorFlow ops, the same tokenizer runs eagerly,
    inside `tf.data` and inside an exported graph. A subclass sets
    `self._id_to_piece` (the bytes each id decodes to; special ids decode to
    nothing) and implements `_encode_flat`.

    Every tokenizer has `pad_id`, `bos_id`, `eos_id`; a document is encoded
    for training as `<bos> text <eos>`. `normalize` (see
    `keras_lm.tokenizers.normalization`) is applied to the text before
    encoding, everywhere the tokenizer runs.
    """

    kind = None
    # The prompt template of a fine-tuned run (a format string), or None.
    prompt_template = None

    def __init__(self, pieces, special_ids, name=None, normalize="none"):
        super().__init__(name=name)
        self.normalize = check_normalization(normalize)
        self.pad_id = special_ids[PAD]
        self.bos_id = special_ids[BOS]
        self.eos_id = special_ids[EOS]
        self.unk_id = special_ids.get(UNK)
        self.special_ids = dict(special_ids)
        self.vocabulary_size = len(pieces)
        self._id_to_piece = tf.constant(pieces, dtype=tf.string)

    def encode(self, text):
        """Encodes a string (-> 1-D ids) or a 1-D batch (-> ragged ids)."""
        text = normalize_graph(tf.convert_to_tensor(text, dtype=tf.string), self.normalize)
        if text.shape.rank == 0:
            return self._encode_scalar(text)
        return self._encode_flat(text)

    def _encode_scalar(self, text):
        return self._encode_flat(text[tf.newaxis])[0]

    def decode(self, ids):
        """Decodes 1-D ids to a string, or 2-D (dense or ragged) to strings.

        Special ids decode to the empty string; the result is raw bytes
        (`tf.string`), so byte-level ids round-trip exactly.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        ids = tf.cast(ids, tf.int32)
        return tf.strings.reduce_join(tf.gather(self._id_to_piece, ids), axis=-1)

    def decode_text(self, ids):
        """Decodes 1-D ids to a Python `str` (invalid UTF-8 shown as U+FFFD).

        The same bytes as `decode`, joined in Python: a server decodes each
        row's text again at every chunk, and eager TensorFlow ops cost about
        2 ms a call there (a tenth of a batch's time at 16 clients).
        """
        if getattr(self, "_pieces", None) is None:
            self._pieces = self._id_to_piece.numpy()  # object array of bytes
        ids = np.asarray(ids, np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self._pieces)):
            raise ValueError(f"ids must be in [0, {len(self._pieces)}), got {ids.min()} to {ids.max()}")
        return b"".join(self._pieces[ids]).decode("utf-8", errors="replace")

    def token_strings(self):
        """A readable string for every id (for TensorBoard's projector)."""
        names = {i: t for t, i in self.special_ids.items()}
        pieces = self._id_to_piece.numpy()
        return [
            names.get(i) or pieces[i].decode("utf-8", errors="backslashreplace")
            for i in range(self.vocabulary_size)
        ]

    def _encode_flat(self, text):
        raise NotImplementedError

    def get_config(self):
        return {"kind": self.kind, "normalize": self.normalize}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def save(self, path):
        """Saves the tokenizer as plain JSON (readable without TensorFlow)."""
        config = self.get_config()
        config.update(
            vocabulary_size=self.vocabulary_size, special_ids=self.special_ids
        )
        # A fine-tuned run's prompt template (keras_lm.prompt_template) travels
        # with its tokenizer: what an app needs to prompt the model.
        if getattr(self, "prompt_template", None) is not None:
            config["prompt_template"] = self.prompt_template
        write_json(path, config)
