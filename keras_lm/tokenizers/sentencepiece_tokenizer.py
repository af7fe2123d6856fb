"""SentencePiece tokenizer (unigram or BPE), learned from the corpus, lossless.

Encoding runs tensorflow-text's `SentencepieceTokenizer` (what keras-hub's
`SentencePieceTokenizer` wraps), in graphs and `tf.data`. We train with the
`sentencepiece` package directly rather than keras-hub's
`compute_sentence_piece_proto`, because that helper fixes the trainer's
normalisation to `nmt_nfkc`, which collapses runs of spaces and drops line
breaks: code and poetry would not round-trip. Our settings: identity
normalisation (ours runs before, see `--normalize`), whitespace kept as it
is (no dummy prefix, no collapsing, whitespace-only pieces allowed) and
byte fallback, so any character outside the vocabulary is spelled as UTF-8
bytes: no `<unk>` in practice, and `decode(encode(x)) == x`.

Ids 0-3 are `<pad>`, `<bos>`, `<eos>`, `<unk>`; 4-259 the 256 byte pieces.
The model (a serialized protobuf) is stored in `tokenizer.json` as base64.

Example (training takes a second):
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
>>> _ = open(path, "w").write("the cat sat on the mat.\\n" * 200)
>>> tokenizer = SentencePieceTokenizer.train([path], vocabulary_size=274)
>>> tokenizer.decode_text(tokenizer.encode("the mat\\n  é"))
'the mat\\n  é'
"""

import base64
import io

import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.tokenizers.normalization import normalize_text
from keras_lm.tokenizers.text_sample import sample_text
from keras_lm.tokenizers.tokenizer import BOS, EOS, PAD, UNK, Tokenizer

SPECIALS = (PAD, BOS, EOS, UNK)
MODEL_TYPES = ("unigram", "bpe")
DEFAULT_VOCABULARY_SIZE = 4096
TRAINING_SAMPLE_BYTES = 8 << 20
# SentencePiece trains on "sentences"; ours are blocks of text, line breaks inside.
SENTENCE_CHARACTERS = 2000


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece over a trained model `proto` (bytes); see the module doc."""

    kind = "sentencepiece"

    def __init__(self, proto, name=None, normalize="none"):
        import sentencepiece
        import tensorflow_text as tf_text

        if isinstance(proto, str):
            proto = base64.b64decode(proto)
        self.proto = bytes(proto)
        processor = sentencepiece.SentencePieceProcessor(model_proto=self.proto)
        special = [processor.id_to_piece(i) for i in range(len(SPECIALS))]
        if special != list(SPECIALS):
            raise UsageError(f"proto: ids 0-3 must be {', '.join(SPECIALS)}, got {special}", argument="proto")
        pieces = [b"", b"", b"", "\ufffd".encode()]
        for i in range(len(SPECIALS), processor.get_piece_size()):
            piece = processor.id_to_piece(i)
            if processor.is_byte(i):  # "<0xE2>"
                pieces.append(bytes([int(piece[3:5], 16)]))
            else:
                pieces.append(piece.replace("\u2581", " ").encode("utf-8"))
        super().__init__(pieces, {t: i for i, t in enumerate(SPECIALS)}, name=name, normalize=normalize)
        self.model_type = processor_model_type(self.proto)
        self._sentencepiece = tf_text.SentencepieceTokenizer(model=self.proto, out_type=tf.int32)

    def _encode_flat(self, text):
        return self._sentencepiece.tokenize(text)

    def get_config(self):
        return {**super().get_config(), "proto": base64.b64encode(self.proto).decode("ascii")}

    @classmethod
    def train(cls, files, vocabulary_size=DEFAULT_VOCABULARY_SIZE, model_type="unigram",
              normalize="none", max_bytes=TRAINING_SAMPLE_BYTES):
        """Trains a model of `vocabulary_size` pieces on a sample of `files`.

        Raises UsageError naming `--vocab_size` when SentencePiece cannot
        reach it (too small for the specials, bytes and alphabet; too large
        for the sample), with SentencePiece's own bound in the message.
        """
        import sentencepiece

        if model_type not in MODEL_TYPES:
            raise UsageError(
                f"sentencepiece_model_type must be one of {', '.join(MODEL_TYPES)}, got {model_type!r}", argument="sentencepiece_model_type")
        sample = sample_text(files, max_bytes)
        text = "".join(normalize_text(t, normalize) for t in sample.chunks)
        alphabet = set(text) - {"\ufffd"}
        minimum = len(SPECIALS) + 256 + len(alphabet)
        if vocabulary_size < minimum:
            raise UsageError(
                f"vocabulary_size={vocabulary_size} is too small for SentencePiece on this corpus: "
                f"{len(SPECIALS)} special tokens + 256 byte pieces + {len(alphabet)} characters "
                f"need {minimum}", argument="vocabulary_size")
        sentences = [
            text[i : i + SENTENCE_CHARACTERS] for i in range(0, len(text), SENTENCE_CHARACTERS)
        ]
        if not text.strip():
            raise UsageError("cannot train SentencePiece: the files hold no text")
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                vocab_size=vocabulary_size,
                model_type=model_type,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                allow_whitespace_only_pieces=True,
                split_digits=False,
                byte_fallback=True,
                character_coverage=1.0,
                max_sentence_length=4 * SENTENCE_CHARACTERS + 16,
                pad_id=0, bos_id=1, eos_id=2, unk_id=3,
                pad_piece=PAD, bos_piece=BOS, eos_piece=EOS, unk_piece=UNK,
                num_threads=2,
                minloglevel=2,
            )
        except RuntimeError as error:
            # e.g. "Vocabulary size is too high (5000). Please set it to a value <= 1234."
            reason = str(error).strip().splitlines()[-1].rsplit("] ", 1)[-1]
            raise UsageError(
                f"vocabulary_size={vocabulary_size}: SentencePiece cannot build it from the "
                f"{sample.bytes_read}-byte sample: {reason}", argument="vocabulary_size") from None
        return cls(model.getvalue(), normalize=normalize)


def processor_model_type(proto):
    """`unigram` or `bpe`, read from a serialized SentencePiece model."""
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    return {1: "unigram", 2: "bpe", 3: "word", 4: "char"}[model.trainer_spec.model_type]
