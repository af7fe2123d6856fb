"""The text of one row's new tokens as they arrive: what is safe to show, and stop strings.

`generate`, `stream` and the server (`keras_lm.serve`) all read their
tokens through this, so a stop string cuts the text the same way everywhere.

Example:
>>> from keras_lm.tokenizers import ByteTokenizer
>>> text = TextStream(ByteTokenizer(), stop=["\\n"])
>>> text.add(list(b"ab")), text.add(list(b"c\\nd")), text.stopped
('ab', 'c', True)
"""

import numpy as np


def cut_at_stop(text, stops):
    """`(text before the first stop string, whether one was found)`."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class TextStream:
    """Decodes a growing list of token ids; `text` never shows what a later token may change.

    Until a stop string is found, the last `len(longest stop) - 1`
    characters are held back (they may begin a stop string), and so is a
    trailing U+FFFD (the first bytes of a character whose last byte has not
    come yet). `stopped` turns True at the first stop string; `text` is then
    final, cut before it.
    """

    def __init__(self, tokenizer, stop=()):
        self.tokenizer = tokenizer
        self.stops = list(stop)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.ids = []
        self.text = ""
        self.stopped = False

    def add(self, tokens):
        """Adds new token ids; returns the text that became safe to show (maybe '')."""
        if self.stopped:
            return ""
        self.ids.extend(tokens)
        text, self.stopped = cut_at_stop(self._decoded(), self.stops)
        if not self.stopped:
            text = text[: len(text) - self.hold]
            text = text[:-1] if text.endswith("\ufffd") else text
        return self._grow(text)

    def finish(self):
        """The end of the tokens: returns the rest of the text (nothing more is held back)."""
        return self._grow(cut_at_stop(self._decoded(), self.stops)[0])

    def _decoded(self):
        return self.tokenizer.decode_text(np.array(self.ids, np.int32))

    def _grow(self, text):
        new = text[len(self.text):]
        if len(text) > len(self.text):
            self.text = text
        return new
