"""Generate text from an exported LiteRT bundle: the loop a phone app implements.

Needs only numpy and ai_edge_litert (no keras_lm, no TensorFlow). Everything
comes from the bundle that `keras-lm export` writes: metadata.json (the
state tensors, prefill lengths, special ids), tokenizer.json, model_*.tflite.

    python examples/litert_generate.py saved_models/quickstart/tflite/model_fp16.tflite "def "
"""

import json
import os
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def encode(tokenizer, text):
    if tokenizer["kind"] == "byte":  # ids 0-255 are the UTF-8 bytes
        return list(text.encode("utf-8"))
    # char: the special tokens first, then one id per vocabulary character.
    offset, unk = len(tokenizer["special_ids"]), tokenizer["special_ids"]["<unk>"]
    index = {c: offset + i for i, c in enumerate(tokenizer["vocabulary"])}
    return [index.get(c, unk) for c in text]


def decode(tokenizer, ids):
    if tokenizer["kind"] == "byte":
        return bytes(i for i in ids if i < 256).decode("utf-8", "replace")
    offset = len(tokenizer["special_ids"])
    vocabulary = tokenizer["vocabulary"]
    return "".join(vocabulary[i - offset] if i >= offset else "" for i in ids)


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
    with open(os.path.join(bundle, metadata["tokenizer"])) as f:
        tokenizer = json.load(f)
    special = metadata["special_ids"]
    interpreter = Interpreter(model_path=model_path, num_threads=2)
    decode_step = interpreter.get_signature_runner("decode")

    # The state (K/V caches, or LSTM h/c) starts at zero; each call returns
    # the next state under the same names.
    state = {s["name"]: np.zeros(s["shape"], s["dtype"]) for s in metadata["state"]}
    ids = [special["<bos>"]] + encode(tokenizer, prompt)
    # 1. Prefill: the longest prefill_N that fits the prompt, in one call.
    fitting = [n for n in metadata["prefill_lengths"] if n <= len(ids)]
    position = max(fitting, default=0)
    if position:
        out = interpreter.get_signature_runner(f"prefill_{position}")(
            token_ids=np.array([ids[:position]], np.int32), **state
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
            token_ids=np.array([token], np.int32), position=np.array(position, np.int32), **state
        )
        logits = out.pop("logits")[0]
        state = out
        position += 1
    return decode(tokenizer, new_ids)


if __name__ == "__main__":
    path, prompt = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    print(prompt + generate(path, prompt, temperature=float(os.environ.get("TEMPERATURE", 0))))
