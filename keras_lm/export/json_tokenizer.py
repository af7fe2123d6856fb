"""The tokenizer of an export bundle's `tokenizer.json`, in plain Python.

What an app does with the file, for every kind we train (no TensorFlow: this
module imports only the standard library, and `sentencepiece` for that kind):

- `byte`: ids 0-255 are the UTF-8 bytes, the special tokens above them;
- `char`: the specials (`<pad>`, `<bos>`, `<eos>`, `<unk>`), then one id per
  character of `vocabulary`; an unknown character is `<unk>`;
- `wordpiece`: the text split into words (runs of `[0-9A-Za-z_]`, runs of
  whitespace, any other single character), each word the longest
  `vocabulary` pieces that spell it (`##` marks a piece inside a word), a
  word that cannot be spelled `<unk>`;
- `sentencepiece`: the SentencePiece model in `proto` (base64), also
  written beside it as `tokenizer.model` for SentencePiece's own libraries.

`normalize` (`none`, `nfkc`, `nfkc_lower`) is applied before encoding.
Decoding concatenates each id's bytes (special ids: none; `<unk>`: U+FFFD).

Example:
>>> tokenizer = JsonTokenizer({"kind": "char", "vocabulary": ["a", "b"],
...     "special_ids": {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}})
>>> tokenizer.encode("abc"), tokenizer.decode([4, 5, 2])
([4, 5, 3], 'ab')
"""

import base64
import json
import re
import unicodedata

# Kept equal to keras_lm.tokenizers.wordpiece_tokenizer (a test checks that
# both encode the same); not imported, because that module needs TensorFlow.
_WHITESPACE = " \t\n\r\f"
_WORD_SPLIT = re.compile(rf"[{_WHITESPACE}]+|[^0-9A-Za-z_{_WHITESPACE}]")
_SUFFIX = "##"
_MAX_BYTES_PER_WORD = 200
_UNKNOWN = "\ufffd".encode()


def normalize_text(text, normalize):
    """As `keras_lm.tokenizers.normalization.normalize_text` (see there)."""
    if normalize == "none":
        return text
    text = unicodedata.normalize("NFKC", text)
    return text.casefold() if normalize == "nfkc_lower" else text


class JsonTokenizer:
    """`encode(text) -> ids` and `decode(ids) -> text` from a `tokenizer.json` dict."""

    def __init__(self, config):
        self.kind = config["kind"]
        self.special_ids = dict(config["special_ids"])
        self.normalize = config.get("normalize", "none")
        # A fine-tuned run's prompt template (see keras_lm.prompt_template), or None.
        self.prompt_template = config.get("prompt_template")
        unk = self.special_ids.get("<unk>")
        specials = set(self.special_ids.values())
        if self.kind == "byte":
            self._pieces = [bytes([i]) for i in range(256)] + [b""] * len(specials)
        elif self.kind in ("char", "wordpiece"):
            vocabulary = config["vocabulary"]
            offset = len(specials) if self.kind == "char" else 0
            self._ids = {piece: offset + i for i, piece in enumerate(vocabulary)}
            self._pieces = [b""] * offset + [
                (p[len(_SUFFIX):] if self.kind == "wordpiece" and p.startswith(_SUFFIX) else p)
                .encode("utf-8", "surrogatepass")
                for p in vocabulary
            ]
            for i in specials:
                self._pieces[i] = b""
        elif self.kind == "sentencepiece":
            import sentencepiece

            self._processor = sentencepiece.SentencePieceProcessor(
                model_proto=base64.b64decode(config["proto"])
            )
            self._pieces = [
                bytes([int(piece[3:5], 16)]) if self._processor.is_byte(i)
                else b"" if i in specials
                else piece.replace("\u2581", " ").encode()
                for i, piece in enumerate(
                    self._processor.id_to_piece(i) for i in range(self._processor.get_piece_size())
                )
            ]
        else:
            raise ValueError(f"tokenizer kind {self.kind!r} is not supported")
        if unk is not None:
            self._pieces[unk] = _UNKNOWN

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def encode(self, text):
        text = normalize_text(text, self.normalize)
        if self.kind == "byte":
            return list(text.encode("utf-8"))
        if self.kind == "char":
            return [self._ids.get(c, self.special_ids["<unk>"]) for c in text]
        if self.kind == "sentencepiece":
            return self._processor.encode(text)
        return [i for word in _words(text) for i in self._word_pieces(word)]

    def decode(self, ids):
        return b"".join(self._pieces[i] for i in ids).decode("utf-8", "replace")

    def _word_pieces(self, word):
        """Greedy longest-match-first WordPiece, as tensorflow-text does it."""
        if len(word.encode("utf-8")) > _MAX_BYTES_PER_WORD:
            return [self.special_ids["<unk>"]]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else _SUFFIX + word[start:end]
                if piece in self._ids:
                    ids.append(self._ids[piece])
                    start = end
                    break
            else:
                return [self.special_ids["<unk>"]]
        return ids


def _words(text):
    """The words of `text`: the separators found by `_WORD_SPLIT` and the text between."""
    words, position = [], 0
    for match in _WORD_SPLIT.finditer(text):
        if match.start() > position:
            words.append(text[position : match.start()])
        words.append(match.group())
        position = match.end()
    if position < len(text):
        words.append(text[position:])
    return words
