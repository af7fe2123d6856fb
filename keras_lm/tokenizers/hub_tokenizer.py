"""A keras-hub tokenizer (byte-level BPE or SentencePiece) behind keras_lm's tokenizer interface.

Encoding is the keras-hub tokenizer's own `tokenize` (eager, `tf.data`,
graphs; for byte-level BPE, its eager path aligned with its graph path by
`keras_lm.compat.align_keras_hub_bpe`, so both give the same ids). Decoding is ours, from the bytes of every id: a
byte-level BPE token's string is read back through GPT-2's byte alphabet, a
SentencePiece piece with `▁` as a space and `<0xNN>` byte pieces as that
byte, so a streamed continuation can be cut at any token. `<pad>`, `<bos>`
and `<eos>` decode to nothing; other special tokens (`<end_of_turn>`,
`<|eot_id|>`) decode to their own text, which is how they encode, so a
chat template's end marker works as a stop string.

Saved as plain JSON: the keras-hub tokenizer's serialized config and its
asset files (vocabulary and merges, or the SentencePiece model) in base64.
"""

import base64
import os
import tempfile

import tensorflow as tf

from keras_lm import compat
from keras_lm.tokenizers.tokenizer import BOS, EOS, PAD, Tokenizer


class HubTokenizer(Tokenizer):
    """Wraps `hub_tokenizer` (a `keras_hub` tokenizer instance); see the module doc.

    Special ids are the keras-hub tokenizer's start and end tokens. keras_lm
    starts every sequence with `<bos>`; Qwen 3 has no start token, so its
    `<|endoftext|>` (its pad token, the separator of its pretraining
    documents) takes that place. The pad id, which the loss ignores as a
    target, is the `<pad>` token where there is one (Gemma, Qwen 3), else
    the start token (Llama 3: never a target, so `<eos>` is scored and
    fine-tunes learn to stop), else the end token (GPT-2, whose one special
    token is both: its `<eos>` is not scored). keras-hub itself pads with id
    0, an ordinary token, which keras_lm's generation would never produce.

    Example:
    >>> from keras_lm.pretrained.tiny_presets import tiny_causal_lm
    >>> tokenizer = HubTokenizer(tiny_causal_lm("gpt2").preprocessor.tokenizer)
    >>> tokenizer.decode_text(tokenizer.encode("def the(x):\\n    é"))
    'def the(x):\\n    é'
    """

    kind = "keras_hub"

    def __init__(self, hub_tokenizer, name=None, normalize="none"):
        import keras

        if isinstance(hub_tokenizer, dict):
            hub_tokenizer = _deserialize(hub_tokenizer)
        self.hub_tokenizer = compat.align_keras_hub_bpe(hub_tokenizer)
        self.hub_class = keras.saving.get_registered_name(type(hub_tokenizer))
        end = hub_tokenizer.end_token_id
        start = getattr(hub_tokenizer, "start_token_id", None)
        pad = hub_tokenizer.pad_token_id if getattr(hub_tokenizer, "pad_token", None) else None
        bos = next(i for i in (start, pad, end) if i is not None)
        pad = next(i for i in (pad, start, end) if i is not None)
        special_ids = {PAD: int(pad), BOS: int(bos), EOS: int(end)}
        pieces = id_bytes(hub_tokenizer, set(special_ids.values()))
        super().__init__(pieces, special_ids, name=name, normalize=normalize)

    def _encode_flat(self, text):
        ids = self.hub_tokenizer.tokenize(text)
        if isinstance(ids, list):  # eager: keras-hub returns ragged results as Python lists
            return tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1, inner_shape=())
        if not isinstance(ids, tf.RaggedTensor):  # in a graph, or a fixed sequence_length
            ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
        return tf.cast(ids, tf.int32)

    def get_config(self):
        return {**super().get_config(), "hub_tokenizer": _serialize(self.hub_tokenizer)}


def id_bytes(hub_tokenizer, silent_ids):
    """The bytes each id decodes to; `silent_ids` (pad, bos, eos) decode to nothing."""
    size = hub_tokenizer.vocabulary_size()
    if hasattr(hub_tokenizer, "proto"):
        pieces = _sentencepiece_bytes(hub_tokenizer.proto)
    else:
        from keras_lm.tokenizers.byte_level import token_bytes

        tokens = [hub_tokenizer.id_to_token(i) for i in range(size)]
        pieces = [token_bytes(t) if token_bytes(t) is not None else t.encode("utf-8")
                  for t in tokens]
    return [b"" if i in silent_ids else piece for i, piece in enumerate(pieces)]


def _sentencepiece_bytes(proto):
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
    pieces = []
    for i in range(processor.get_piece_size()):
        piece = processor.id_to_piece(i)
        if processor.is_byte(i):  # "<0xE2>"
            pieces.append(bytes([int(piece[3:5], 16)]))
        elif processor.is_control(i):
            pieces.append(b"")
        elif processor.is_unknown(i):
            pieces.append("\ufffd".encode())
        else:
            pieces.append(piece.replace("\u2581", " ").encode("utf-8"))
    return pieces


def _serialize(hub_tokenizer):
    """The keras-hub tokenizer as JSON: its serialized config and its asset files (base64)."""
    import keras

    with tempfile.TemporaryDirectory() as directory:
        hub_tokenizer.save_assets(directory)
        assets = {}
        for name in sorted(os.listdir(directory)):
            with open(os.path.join(directory, name), "rb") as f:
                assets[name] = base64.b64encode(f.read()).decode("ascii")
    return {"object": keras.saving.serialize_keras_object(hub_tokenizer), "assets": assets}


def _deserialize(config):
    import keras

    hub_tokenizer = keras.saving.deserialize_keras_object(config["object"])
    with tempfile.TemporaryDirectory() as directory:
        for name, data in config["assets"].items():
            with open(os.path.join(directory, os.path.basename(name)), "wb") as f:
                f.write(base64.b64decode(data))
        hub_tokenizer.load_assets(directory)
    return hub_tokenizer
