"""Exported files of trained models: size, LiteRT latency, accuracy cost, per variant.

For each model directory (default: the quickstart Transformer and the
quickstart-sized LSTM, made by `keras-lm train` and
`keras-lm train --model=lstm --output_dir=saved_models/lstm_quickstart`), in
one run: export every variant into a scratch directory with `keras_lm.export`
(calibration and validation text: the run's own files), then measure with
LiteRT (batch 1, 2 threads):

- file size;
- prefill latency: one `prefill_32` call (median of `--repeats`);
- decode latency: one `decode` call at positions 32..159 (median; up to
  the context);
- validation perplexity change vs Keras on 64 windows of 32 tokens, and
  greedy agreement (the share of Keras' greedy tokens, up to 64 per prompt,
  reproduced before the first difference), both measured by the export;

and decode tokens/s of LiteRT float32 (the runner's greedy loop) vs our Keras
`generate` (XLA), 128 new tokens after a 32-token prompt (or what fits the
context), batch 1.

    python benchmarks/export_report.py [--model_dirs=D1,D2] [--repeats=30]

Prints Markdown tables for BENCHMARKS.md.
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import machine  # noqa: E402
from keras_lm.export import LiteRTRunner, export  # noqa: E402
from keras_lm.generation import generate  # noqa: E402
from keras_lm.model_dir import load_model_dir, run_files  # noqa: E402

QUANTIZE = ("none", "fp16", "dynamic_int8", "int8")
PROMPT, NEW = 32, 128


def median_seconds(function, repeats):
    function()  # warm-up (allocations, XNNPACK packing)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def litert_latencies(path, prompt_ids, repeats):
    """(prefill_32 seconds, decode seconds per token) with 2 threads."""
    runner = LiteRTRunner(path, num_threads=2)
    prefill = median_seconds(lambda: runner.prefill(prompt_ids), repeats)
    _, state = runner.prefill(prompt_ids)
    steps = []
    token = int(prompt_ids[-1])
    for position in range(PROMPT, min(PROMPT + NEW, runner.max_length)):
        start = time.perf_counter()
        logits, state = runner.decode(token, state, position)
        steps.append(time.perf_counter() - start)
        token = int(np.argmax(logits[0]))
    return prefill, statistics.median(steps[1:])


def tokens_per_second(model, tokenizer, path, prompt_ids, repeats):
    """Greedy decode tokens/s: LiteRT float32 runner vs Keras `generate`, same prompt."""
    runner = LiteRTRunner(path, num_threads=2)
    text = tokenizer.decode_text(np.array(prompt_ids[1:], np.int32))
    new = min(NEW, model.sequence_length - PROMPT)

    def litert():
        return runner.generate_ids(prompt_ids, new)

    def keras_generate():
        return generate(model, tokenizer, text, new, sampler="greedy")

    # eos may stop greedy text early; count the tokens each produced.
    litert_tokens = len(litert())
    keras_tokens = len(tokenizer.encode(keras_generate()))
    return (
        litert_tokens / median_seconds(litert, max(3, repeats // 10)),
        keras_tokens / median_seconds(keras_generate, max(3, repeats // 10)),
    )


def report(model_dir, repeats):
    model, tokenizer, config = load_model_dir(model_dir)
    train, validation = run_files(config)
    scratch = tempfile.mkdtemp(prefix="export_report_")
    start = time.perf_counter()
    result = export(
        model, tokenizer, scratch, quantize=QUANTIZE,
        calibration_files=train, validation_files=validation,
    )
    export_seconds = time.perf_counter() - start
    window = np.array(
        [tokenizer.bos_id] + tokenizer.encode(open(validation[0], encoding="utf-8").read())
        .numpy()[: PROMPT - 1].tolist(),
        np.int32,
    )
    rows = []
    for variant, entry in result["files"].items():
        path = os.path.join(scratch, "tflite", entry["file"])
        prefill, decode = litert_latencies(path, window, repeats)
        parity = entry["parity"]
        rows.append(
            f"| {os.path.basename(model_dir)} | {variant} | {entry['size_bytes'] / 2**20:.2f} MB "
            f"| {prefill * 1e3:.2f} ms | {decode * 1e3:.3f} ms | {parity['perplexity_change']:+.2%} "
            f"| {parity['top1_agreement']:.1%} | {parity['greedy_agreement']:.0%} |"
        )
    float32 = os.path.join(scratch, "tflite", result["files"]["float32"]["file"])
    litert_tps, keras_tps = tokens_per_second(model, tokenizer, float32, window.tolist(), repeats)
    speed = (
        f"| {os.path.basename(model_dir)} | {model.count_params():,} | {litert_tps:,.0f} "
        f"| {keras_tps:,.0f} | {litert_tps / keras_tps:.2f}x | {export_seconds:.0f} s |"
    )
    int8 = result["files"].get("int8", {})
    note = f"int8 mode: {int8.get('int8_mode')} ({int8.get('int8_fallback_reason') or 'full'})"
    return rows, speed, note


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model_dirs", default="saved_models/quickstart,saved_models/lstm_quickstart"
    )
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print("| model | variant | size | prefill 32 | decode / token | ppl change | top-1 agreement "
          "| greedy agreement |")
    print("|---|---|---|---|---|---|---|---|")
    speeds, notes = [], []
    for model_dir in args.model_dirs.split(","):
        rows, speed, note = report(model_dir, args.repeats)
        print("\n".join(rows), flush=True)
        speeds.append(speed)
        notes.append(f"{os.path.basename(model_dir)}: {note}")
    print("\n| model | parameters | LiteRT float32 tok/s | Keras generate tok/s | ratio "
          "| export time (4 variants + SavedModel + parity) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(speeds))
    print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
