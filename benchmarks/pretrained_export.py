"""An imported keras-hub model on the phone: file sizes per variant and engine decode speed.

Imports a keras-hub preset into a keras_lm run, exports it with
`Run.export(formats=["tflite", "litertlm"], ...)` (the same path as
`keras-lm export --format=tflite,litertlm`), then measures, at batch 1 and
greedy, new tokens per second (the prompt's prefill excluded, best of
`--repeats` after a warm-up):

- LiteRT-LM's engine on each `.litertlm` variant (`litert_lm.Benchmark`,
  CPU: its own clock and its count of decoded tokens);
- keras-hub's own `generate`, compiled with `jit_compile=True`;
- keras_lm's `generate` on the same model.

Models: a tiny random preset of `--family` (the largest practical tiny one is
`--family=gemma3 --scale=4`), or `--gpt2_small`: GPT-2 small's shape
(12 layers, 12 heads, 768 wide, 50,257 tokens, 124M parameters) built from
its config with random weights (decode speed does not depend on the
weights; nothing is downloaded), with a byte-level BPE tokenizer padded to
GPT-2's vocabulary size.

    python benchmarks/pretrained_export.py --gpt2_small --sequence_length=256   # the record
    python benchmarks/pretrained_export.py --family=gemma3 --scale=4
    python benchmarks/pretrained_export.py --family=gpt2 --smoke         # seconds: proves it runs

Prints one JSON line per model. Run it on an idle machine for the record.
"""

import argparse
import json
import os
import tempfile

# The same best-of-N rate as the generate benchmark (this folder is on sys.path when run).
from hub_shapes import gpt2_small, scaled_tiny
from pretrained_generate import generate_without_stop, tokens_per_second

PROMPT = "def encode(self, o):\n    "


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gemma3", help="gpt2, gemma3 or llama3 (tiny)")
    parser.add_argument("--scale", type=int, default=1,
                        help="widen the tiny preset: hidden and MLP widths x scale")
    parser.add_argument("--gpt2_small", action="store_true", help="GPT-2 small's shape, random")
    parser.add_argument("--sequence_length", type=int, default=None,
                        help="the exported context (cache length); default: the preset's")
    parser.add_argument("--quantize", default="none,fp16,dynamic_int8,int4")
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2,
                        help="the engine's CPU threads (its default is its own choice)")
    parser.add_argument("--smoke", action="store_true", help="float32 only, 8 tokens, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        args.quantize, args.new_tokens, args.repeats = "none", 8, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = tempfile.mkdtemp(prefix="pretrained_export_")
    hub = gpt2_small() if args.gpt2_small else scaled_tiny(args.family, args.scale)
    preset = os.path.join(work, "preset")
    hub.save_to_preset(preset)
    print(json.dumps(measure(hub, preset, work, args)))


def measure(hub, preset, work, args):
    """Exports the preset's import and times the three decoders; returns the figures."""
    import keras_lm

    run_dir = keras_lm.import_preset(preset, os.path.join(work, "run"),
                                     sequence_length=args.sequence_length)
    run = keras_lm.Run(run_dir)
    quantize = args.quantize.split(",")
    report = run.export(formats=["tflite", "litertlm"], quantize=quantize,
                        prefill_lengths=[8, 32])
    length = 1 + len(run.tokenizer.encode(PROMPT))  # with <bos>
    figures = {"model": "gpt2_small" if args.gpt2_small else f"{args.family}x{args.scale}",
               "engine_threads": args.threads,
               "parameters": run.model.parameter_count(),
               "sequence_length": run.model.sequence_length, "new_tokens": args.new_tokens,
               "variants": {}}
    for variant, entry in report["files"].items():
        path = os.path.join(run_dir, entry["litertlm"]["file"])
        figures["variants"][variant] = {
            "tflite_bytes": entry["size_bytes"], "litertlm_bytes": entry["litertlm"]["size_bytes"],
            "engine_decode": engine_decode(path, length, args.new_tokens, args.threads),
        }
    prompts = [PROMPT]
    hub.compile(sampler="greedy", jit_compile=True)
    figures["keras_hub_xla_tokens_per_s"] = tokens_per_second(
        lambda: hub.generate(prompts, max_length=length + args.new_tokens, stop_token_ids=None),
        args.new_tokens, args.repeats)
    figures["keras_lm_tokens_per_s"] = tokens_per_second(
        lambda: generate_without_stop(run.model, prompts, args.new_tokens), args.new_tokens,
        args.repeats)
    return figures


def engine_decode(path, prompt_tokens, new_tokens, threads):
    """`{"tokens": n, "tokens_per_s": r}`: LiteRT-LM's own benchmark of a `.litertlm` (CPU).

    `litert_lm.Benchmark` decodes a fixed number of tokens and reports the
    count it decoded, so the rate does not depend on what a random model
    writes (counting tokens by re-encoding the engine's text overcounted:
    a random GPT-2-small writes `<|unused_N|>` ids, each ~10 tokens again).
    """
    import litert_lm

    with tempfile.TemporaryDirectory(prefix="engine_cache_") as cache:
        info = litert_lm.Benchmark(
            model_path=os.fspath(path),
            backend=litert_lm.interfaces.Backend.CPU(thread_count=threads),
            prefill_tokens=prompt_tokens, decode_tokens=new_tokens, prompt=PROMPT,
            cache_dir=cache).run()
    return {"tokens": info.last_decode_token_count,
            "tokens_per_s": info.last_decode_tokens_per_second}


if __name__ == "__main__":
    main()
