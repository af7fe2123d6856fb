"""Decoding speed at batch 1: LiteRT-LM's engine, our Python LiteRT runner, Keras (XLA).

For one trained run (default: saved_models/quickstart), in one process:
export `.litertlm` files (`keras_lm.export`, `formats=("litertlm",)`) for
each variant into a scratch directory, then measure

- LiteRT-LM's own benchmark (`litert_lm.Benchmark`, CPU, `--threads`):
  prefill tokens/s, decode tokens/s and time to first token, per variant;
- our Python runner (`LiteRTRunner.generate_ids`, float32 `.tflite`,
  greedy): decode tokens/s, with the state kept in the `decode`
  signature's input tensors (one cache row moved per step), and as it ran
  before (every cache copied in and out by the signature runner at each
  step), side by side;
- Keras `generate` (greedy, XLA-compiled, batch 1): decode tokens/s;

with `--prefill` prompt tokens and `--decode` new tokens (clipped to the
context). The ratios to Keras are of figures taken side by side in this run.

    python benchmarks/litertlm_decode.py [--model_dir=saved_models/quickstart]
        [--quantize=none,fp16,dynamic_int8,int4] [--threads=2]

Prints two Markdown tables for BENCHMARKS.md: the speeds, then per variant
the file sizes and the parity figures of the export (validation perplexity
change against Keras, the engine's greedy agreement with Keras).
"""

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import machine  # noqa: E402
from keras_lm.export import LiteRTRunner, export  # noqa: E402
from keras_lm.export.litert_runner import run_prompt  # noqa: E402
from keras_lm.generation import generate  # noqa: E402
from keras_lm.model_dir import load_model_dir, run_files  # noqa: E402


def best_seconds(functions, repeats):
    """`{name: best seconds}` of each function, run in turn `repeats` times.

    Interleaved, so that a change in the machine's load reaches every
    figure alike (the ratios are what this script is for).
    """
    for function in functions.values():
        function()  # warm-up (compiles Keras' loop)
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def copying_generate(runner, prompt_ids, new):
    """Greedy decoding through `runner.decode`: every cache in and out at each step."""
    for logits, state in run_prompt(runner, prompt_ids):
        pass
    logits, position, ids = logits[-1], len(prompt_ids), []
    while len(ids) < new:
        ids.append(int(np.argmax(logits)))
        if len(ids) < new:
            logits, state = runner.decode(ids[-1], state, position)
            logits, position = logits[0], position + 1
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default="saved_models/quickstart")
    parser.add_argument("--quantize", default="none,fp16,dynamic_int8,int4")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prefill", type=int, default=32)
    parser.add_argument("--decode", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model, tokenizer, config = load_model_dir(args.model_dir)
    _, validation = run_files(config)
    scratch = tempfile.mkdtemp(prefix="litertlm_decode_")
    try:
        measure(args, model, tokenizer, validation, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure(args, model, tokenizer, validation, scratch):
    import litert_lm

    result = export(model, tokenizer, scratch, formats=("litertlm",),
                    quantize=args.quantize.split(","), validation_files=validation)
    new = min(args.decode, model.sequence_length - args.prefill - 1)
    text = open(validation[0], encoding="utf-8").read()
    prompt_ids = [tokenizer.bos_id] + tokenizer.encode(text).numpy()[: args.prefill - 1].tolist()
    prompt = tokenizer.decode_text(np.array(prompt_ids[1:], np.int32))

    rows = []
    for variant, entry in result["files"].items():
        path = os.path.join(scratch, entry["litertlm"]["file"])
        with tempfile.TemporaryDirectory() as cache:
            info = litert_lm.Benchmark(
                model_path=path, backend=litert_lm.interfaces.Backend.CPU(thread_count=args.threads),
                prefill_tokens=args.prefill, decode_tokens=new, prompt=prompt, cache_dir=cache,
            ).run()
        rows.append((variant, entry["litertlm"]["size_bytes"], info))

    runner = LiteRTRunner(os.path.join(scratch, "tflite", result["files"]["float32"]["file"]),
                          num_threads=args.threads)
    bound_ids = runner.generate_ids(prompt_ids, new)
    assert copying_generate(runner, prompt_ids, new) == bound_ids  # the same tokens
    seconds = best_seconds({
        "runner": lambda: runner.generate_ids(prompt_ids, new),
        "copying": lambda: copying_generate(runner, prompt_ids, new),
        "keras": lambda: generate(model, tokenizer, prompt, new, sampler="greedy"),
    }, args.repeats)
    runner_tps, copying_tps, keras_tps = (new / seconds[k] for k in ("runner", "copying", "keras"))

    print(f"{machine()}; {os.path.basename(os.path.abspath(args.model_dir))}, "
          f"{model.count_params():,} parameters, prompt {args.prefill} tokens, {new} new, "
          f"batch 1, {args.threads} threads")
    print("| runtime | variant | file | prefill tok/s | decode tok/s | time to first token "
          "| decode vs Keras |")
    print("|---|---|---|---|---|---|---|")
    for variant, size, info in rows:
        print(f"| LiteRT-LM engine | {variant} | {size / 2**20:.2f} MB "
              f"| {info.last_prefill_tokens_per_second:,.0f} "
              f"| {info.last_decode_tokens_per_second:,.0f} "
              f"| {info.time_to_first_token_in_second * 1e3:.1f} ms "
              f"| {info.last_decode_tokens_per_second / keras_tps:.2f}x |")
    print(f"| Python LiteRTRunner (state in the decode inputs) | float32 | - | - "
          f"| {runner_tps:,.0f} | - | {runner_tps / keras_tps:.2f}x |")
    print(f"| Python LiteRTRunner (caches copied each step, before) | float32 | - | - "
          f"| {copying_tps:,.0f} | - | {copying_tps / keras_tps:.2f}x |")
    print(f"| Keras generate (XLA) | float32 | - | - | {keras_tps:,.0f} | - | 1.00x |")
    print()
    print("| variant | .tflite | .litertlm | perplexity change | engine greedy agreement |")
    print("|---|---|---|---|---|")
    for variant, entry in result["files"].items():
        print(f"| {variant} | {entry['size_bytes'] / 2**20:.2f} MB "
              f"| {entry['litertlm']['size_bytes'] / 2**20:.2f} MB "
              f"| {entry['parity'].get('perplexity_change', float('nan')):+.2%} "
              f"| {entry['litertlm']['engine_parity']['greedy_agreement']:.2f} |")


if __name__ == "__main__":
    main()
