"""keras_lm `generate` against keras-hub's `generate` (XLA) on the same imported model.

Greedy decoding at batch 1 and 8, new tokens per second after a warm-up call
(compilation excluded), each side on the same weights. keras-hub's side is
compiled with `jit_compile=True` (its "auto" does not compile on CPU).

    python benchmarks/pretrained_generate.py --family=gemma3           # tiny random preset
    python benchmarks/pretrained_generate.py --preset=path/to/preset   # any local preset

Prints one JSON line per batch size. Run it on an idle machine for the record.
"""

import argparse
import json
import os
import tempfile
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gemma3", help="a tiny preset family (gpt2, "
                        "gemma3, llama3) when --preset is not given")
    parser.add_argument("--preset", default=None, help="a local keras-hub preset directory")
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--batch_sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import keras_hub

    import keras_lm
    from keras_lm.pretrained.tiny_presets import write_tiny_preset

    work = tempfile.mkdtemp()
    preset = args.preset or write_tiny_preset(args.family, work)
    model = keras_lm.load(keras_lm.import_preset(preset, os.path.join(work, "run")))
    hub = keras_hub.models.CausalLM.from_preset(preset)
    hub.compile(sampler="greedy", jit_compile=True)
    prompt = "def encode(self, o):\n    "
    length = 1 + len(model.tokenizer.encode(prompt))
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        prompts = [prompt] * batch
        ours = tokens_per_second(lambda: model.generate(prompts, args.new_tokens),
                                  batch * args.new_tokens, args.repeats)
        theirs = tokens_per_second(
            lambda: hub.generate(prompts, max_length=length + args.new_tokens,
                                 stop_token_ids=None),
            batch * args.new_tokens, args.repeats)
        print(json.dumps({"preset": os.path.basename(preset), "batch": batch,
                          "new_tokens": args.new_tokens, "keras_lm_tokens_per_s": ours,
                          "keras_hub_xla_tokens_per_s": theirs, "speedup": ours / theirs}))


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
