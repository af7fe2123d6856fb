"""keras_lm `generate` against keras-hub's `generate` (XLA) on the same imported model.

Greedy decoding at batch 1 and 8, new tokens per second after a warm-up call
(compilation excluded), each side on the same weights. keras-hub's side is
compiled with `jit_compile=True` (its "auto" does not compile on CPU).

    python benchmarks/pretrained_generate.py --family=gemma3           # tiny random preset
    python benchmarks/pretrained_generate.py --preset=path/to/preset   # any local preset
    python benchmarks/pretrained_generate.py --gpt2_small --sequence_length=256 --new_tokens=32

Prints one JSON line per batch size. Run it on an idle machine for the record.
"""

import argparse
import json
import os
import tempfile
import time

from hub_shapes import gpt2_small


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gemma3", help="a tiny preset family (gpt2, "
                        "gemma3, llama3) when --preset is not given")
    parser.add_argument("--preset", default=None, help="a local keras-hub preset directory")
    parser.add_argument("--gpt2_small", action="store_true",
                        help="GPT-2 small's shape (124M), random, instead of a tiny preset")
    parser.add_argument("--sequence_length", type=int, default=None,
                        help="the imported run's context (default: the preset's)")
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--batch_sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import keras_hub

    import keras_lm
    from keras_lm import compat
    from keras_lm.pretrained.tiny_presets import write_tiny_preset

    work = tempfile.mkdtemp()
    preset = args.preset
    if args.gpt2_small:
        preset = os.path.join(work, "gpt2_small")
        gpt2_small().save_to_preset(preset)
    preset = preset or write_tiny_preset(args.family, work)
    model = keras_lm.load(keras_lm.import_preset(preset, os.path.join(work, "run"),
                                                 sequence_length=args.sequence_length))
    hub = keras_hub.models.CausalLM.from_preset(preset)
    # Both sides tokenize alike (keras-hub 0.32's eager BPE does not pre-split words).
    compat.align_keras_hub_bpe(hub.preprocessor.tokenizer)
    hub.compile(sampler="greedy", jit_compile=True)
    prompt = "def encode(self, o):\n    "
    length = 1 + len(model.tokenizer.encode(prompt))
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        prompts = [prompt] * batch
        ours = tokens_per_second(lambda: generate_without_stop(model, prompts, args.new_tokens),
                                  batch * args.new_tokens, args.repeats)
        theirs = tokens_per_second(
            lambda: hub.generate(prompts, max_length=length + args.new_tokens,
                                 stop_token_ids=None),
            batch * args.new_tokens, args.repeats)
        print(json.dumps({"preset": os.path.basename(preset), "batch": batch,
                          "new_tokens": args.new_tokens, "keras_lm_tokens_per_s": ours,
                          "keras_hub_xla_tokens_per_s": theirs, "speedup": ours / theirs}))


def generate_without_stop(model, prompts, new_tokens):
    """keras_lm's `generate` path (encode, prefill, compiled loop, decode to text) with
    no end token, as keras-hub's `generate(..., stop_token_ids=None)` runs: both sides
    write exactly `new_tokens` per row, whatever a random model samples."""
    from keras_lm.generation.decoding import decode_tokens
    from keras_lm.generation.generate import encode_prompts
    from keras_lm.generation.samplers import GreedySampler

    tokenizer = model.tokenizer
    rows = encode_prompts(tokenizer, prompts, new_tokens, model.sequence_length)
    texts = [[] for _ in rows]
    for chunk in decode_tokens(model, rows, new_tokens, GreedySampler(), end_id=-1,
                               pad_id=tokenizer.pad_id):
        for text, ids in zip(texts, chunk):
            text.extend(ids)
    assert all(len(t) == new_tokens for t in texts), [len(t) for t in texts]
    return [tokenizer.decode_text(t) for t in texts]


def tokens_per_second(call, tokens, repeats):
    call()  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return tokens / best


if __name__ == "__main__":
    main()
