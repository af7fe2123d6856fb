"""The tokenizer of synthetic tasks: each id is one whitespace-separated word."""

import tensorflow as tf

from keras_lm.tokenizers.tokenizer import BOS, EOS, PAD, UNK, Tokenizer


class IdTokenizer(Tokenizer):
    """`vocabulary` task ids (named by `labels`) plus `<pad> <bos> <eos> <unk>`.

    Synthetic tasks (`keras_lm.data.synthetic`) produce ids, not text; this
    tokenizer gives those ids readable names so that generation, TensorBoard
    labels and `tokenizer.json` work as for text runs. Text is a sequence of
    names separated by whitespace; a name it does not know encodes to
    `<unk>`. The task ids keep their values (0 .. n-1), the special ids
    follow them, so a model trained on a task of n ids has n + 4 ids.

    Example:
    >>> tokenizer = IdTokenizer(labels=["0", "1", "+", "="])
    >>> tokenizer.encode("1 + 1 =").numpy().tolist()
    [1, 2, 1, 3]
    >>> tokenizer.decode_text([1, 2, 0])
    '1 + 0 '
    >>> IdTokenizer(size=3).pad_id
    3
    """

    kind = "id"

    def __init__(self, size=None, labels=None, name=None, normalize="none"):
        if labels is None:
            if size is None or size < 1:
                raise ValueError(f"size must be >= 1 without labels, got {size}")
            labels = [str(i) for i in range(size)]
        labels = [str(label) for label in labels]
        if size is not None and size != len(labels):
            raise ValueError(f"size={size} but {len(labels)} labels")
        if len(set(labels)) != len(labels) or any(not l or l != l.strip() or " " in l
                                                   for l in labels):
            raise ValueError(f"labels must be distinct words without spaces, got {labels}")
        self.labels = labels
        n = len(labels)
        special_ids = {PAD: n, BOS: n + 1, EOS: n + 2, UNK: n + 3}
        # Each piece ends with a space, so decoded ids read as separate words.
        pieces = [label.encode() + b" " for label in labels] + [b""] * 4
        super().__init__(pieces, special_ids, name=name, normalize=normalize)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(labels), tf.range(n, dtype=tf.int32)),
            default_value=n + 3)

    def _encode_flat(self, text):
        # (batch,) strings -> (batch, None) words -> ids.
        words = tf.strings.split(tf.strings.strip(text))
        return tf.ragged.map_flat_values(self._table.lookup, words)

    def get_config(self):
        return {**super().get_config(), "labels": self.labels}
