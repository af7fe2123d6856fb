"""Generate text from an exported LiteRT bundle: the loop a phone app implements.

Needs only numpy and ai_edge_litert (and sentencepiece for that tokenizer;
no keras_lm, no TensorFlow). Everything
comes from the bundle that `keras-lm export` writes: metadata.json (the
state tensors, prefill lengths, special ids), tokenizer.json, model_*.tflite.

    python examples/litert_generate.py saved_models/quickstart/tflite/model_fp16.tflite "def "
"""

import json
import os
import re
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class Tokenizer:
    """tokenizer.json: byte, char, wordpiece or sentencepiece ids, and back."""

    def __init__(self, config):
        self.kind, special = config["kind"], config["special_ids"]
        self.unk = special.get("<unk>")
        if self.kind == "sentencepiece":  # SentencePiece's own library reads the model
            import base64

            import sentencepiece

            self.sp = sentencepiece.SentencePieceProcessor(
                model_proto=base64.b64decode(config["proto"]))
            size = self.sp.get_piece_size()
            pieces = [bytes([int(p[3:5], 16)]) if self.sp.is_byte(i) else p.replace("\u2581", " ").encode()
                      for i, p in enumerate(map(self.sp.id_to_piece, range(size)))]
        elif self.kind == "byte":  # ids 0-255 are the UTF-8 bytes
            pieces = [bytes([i]) for i in range(256)] + [b""] * len(special)
        else:  # char: the specials, then one id per character; wordpiece: the pieces
            offset = len(special) if self.kind == "char" else 0
            self.ids = {p: offset + i for i, p in enumerate(config["vocabulary"])}
            pieces = [b""] * offset + [p.removeprefix("##").encode() for p in config["vocabulary"]]
        for i in special.values():
            pieces[i] = b"\xef\xbf\xbd" if i == self.unk else b""  # <unk> shows as U+FFFD
        self.pieces = pieces
        if config.get("normalize", "none") != "none":
            sys.exit("this example skips --normalize; see keras_lm/export/json_tokenizer.py")

    def encode(self, text):
        if self.kind == "byte":
            return list(text.encode("utf-8"))
        if self.kind == "sentencepiece":
            return self.sp.encode(text)
        if self.kind == "char":
            return [self.ids.get(c, self.unk) for c in text]
        # wordpiece: words are runs of [0-9A-Za-z_], runs of whitespace, or one other
        # character; each word the longest pieces that spell it ("##" inside a word).
        ids = []
        for word in re.findall(r"[0-9A-Za-z_]+|[ \t\n\r\f]+|[^0-9A-Za-z_ \t\n\r\f]", text):
            start, word_ids = 0, []
            while start < len(word) and len(word.encode()) <= 200:
                end = next((e for e in range(len(word), start, -1)
                            if (word[start:e] if start == 0 else "##" + word[start:e]) in self.ids), None)
                if end is None:
                    break
                word_ids.append(self.ids[word[start:end] if start == 0 else "##" + word[start:end]])
                start = end
            ids += word_ids if start == len(word) else [self.unk]
        return ids

    def decode(self, ids):
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", "replace")


def sample(logits, rng, temperature, top_p):
    """Top-p sampling at `temperature` (0: the most likely token)."""
    if temperature == 0:
        return int(np.argmax(logits))
    probabilities = np.exp((logits - logits.max()) / temperature)
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities)
    keep = order[np.cumsum(probabilities[order]) - probabilities[order] < top_p]
    return int(rng.choice(keep, p=probabilities[keep] / probabilities[keep].sum()))


def generate(model_path, prompt, max_new_tokens=100, temperature=0.0, top_p=0.9, seed=0):
    bundle = os.path.dirname(os.path.abspath(model_path))
    with open(os.path.join(bundle, "metadata.json")) as f:
        metadata = json.load(f)
    with open(os.path.join(bundle, metadata["tokenizer"]), encoding="utf-8") as f:
        tokenizer = Tokenizer(json.load(f))
    special = metadata["special_ids"]
    interpreter = Interpreter(model_path=model_path, num_threads=2)
    decode_step = interpreter.get_signature_runner("decode")

    # The state (K/V caches, or LSTM h/c) starts at zero; each call returns
    # the next state under the same names.
    state = {s["name"]: np.zeros(s["shape"], s["dtype"]) for s in metadata["state"]}
    ids = [special["<bos>"]] + tokenizer.encode(prompt)
    # 1. Prefill: the longest prefill_N that fits the prompt, in one call.
    fitting = [n for n in metadata["prefill_lengths"] if n <= len(ids)]
    position = max(fitting, default=0)
    if position:
        out = interpreter.get_signature_runner(f"prefill_{position}")(
            tokens=np.array([ids[:position]], np.int32),
            input_pos=np.arange(position, dtype=np.int32), **state
        )
        logits = out.pop("logits")[0, -1]
        state = out
    # 2. Decode the rest of the prompt, then new tokens, one call per position.
    rng = np.random.default_rng(seed)
    new_ids = []
    limit = metadata["context_length"]
    while position < limit and len(new_ids) < max_new_tokens:
        if position < len(ids):
            token = ids[position]  # still reading the prompt
        else:
            logits[[special["<pad>"], special["<bos>"]]] = -np.inf  # never generated
            token = sample(logits, rng, temperature, top_p)
            if token == special["<eos>"]:
                break
            new_ids.append(token)
        out = decode_step(
            tokens=np.array([[token]], np.int32), input_pos=np.array([position], np.int32), **state
        )
        logits = out.pop("logits")[0, 0]
        state = out
        position += 1
    return tokenizer.decode(new_ids)


if __name__ == "__main__":
    path, prompt = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    print(prompt + generate(path, prompt, temperature=float(os.environ.get("TEMPERATURE", 0))))
