"""Training throughput (tokens/s) and MFU of both families, XLA on and off.

MFU = model FLOPs per second / a matmul peak measured in the same run, in
the same precision: float32 against a float32 matmul, `mixed_bfloat16`
(bfloat16 compute, float32 weights) against a bfloat16 matmul. Model FLOPs per token: 6 x (parameters that multiply: all but the
embedding lookup; a tied output head counts) plus, for the Transformer,
12 x layers x context x width for attention scores and values.

    python benchmarks/train_throughput.py [--steps=10] [--precision=float32,mixed_bfloat16]

Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import machine, matmul_peak_flops  # noqa: E402
from keras_lm.models import LSTMLM, TransformerLM  # noqa: E402

VOCABULARY = 259
CASES = [
    # (family class, preset, batch size)
    (TransformerLM, "small", 32),
    (TransformerLM, "base", 8),
    (LSTMLM, "small", 32),
    (LSTMLM, "base", 8),
]


def flops_per_token(model):
    """Training FLOPs per token (forward + backward = 3 x forward)."""
    embedding = model.token_embedding.embeddings.shape.num_elements()
    multiplying = model.count_params() - embedding
    if getattr(model, "tie_embeddings", False):
        multiplying += embedding  # the tied head is a matmul
    attention = 0
    if isinstance(model, TransformerLM):
        attention = 12 * model.num_layers * model.sequence_length * model.hidden_dim
    return 6 * multiplying + attention


def tokens_per_second(model_class, preset, batch_size, jit_compile, steps, precision):
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy(precision)  # as `keras-lm train --precision` does
    try:
        model = model_class.from_preset(preset, vocabulary_size=VOCABULARY)
    finally:
        keras.config.set_dtype_policy("float32")
    model.compile("adamw", learning_rate=1e-3, jit_compile=jit_compile)
    length = model.sequence_length
    tokens = np.random.default_rng(0).integers(0, 256, (batch_size * 4, length + 1), np.int32)
    data = tf.data.Dataset.from_tensor_slices((tokens[:, :-1], tokens[:, 1:]))
    data = data.repeat().batch(batch_size, drop_remainder=True).prefetch(2)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)  # compile, warm up
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return steps * batch_size * length / seconds, model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--only", default="",
                        help="run only cases whose model name or preset contains this, "
                             "e.g. Transformer, base or TransformerLM/base")
    parser.add_argument("--precision", default="float32,mixed_bfloat16",
                        help="comma-separated: float32, mixed_bfloat16")
    parser.add_argument("--jit", default="off,on", help="comma-separated: off, on")
    args = parser.parse_args()
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    jits = [j.strip() == "on" for j in args.jit.split(",") if j.strip()]
    peak_dtypes = {"float32": tf.float32, "mixed_bfloat16": tf.bfloat16}
    peaks = {p: matmul_peak_flops(dtype=peak_dtypes[p]) for p in precisions}
    print(f"Machine: {machine()}; matmul peak (2048^2, XLA): " + ", ".join(
        f"{p} {peak / 1e9:.0f} GFLOP/s" for p, peak in peaks.items()) + "\n")
    print("| model | preset | parameters | batch x context | precision | XLA | tokens/s | MFU "
          "| XLA speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for model_class, preset, batch_size in CASES:
        if args.only not in f"{model_class.__name__}/{preset}":
            continue
        for precision in precisions:
            rates = {}
            for jit in jits:
                on = "on" if jit else "off"
                try:
                    rate, model = tokens_per_second(model_class, preset, batch_size, jit,
                                                    args.steps, precision)
                except tf.errors.ResourceExhaustedError:
                    print(f"| {model_class.__name__} | {preset} | | {batch_size} | {precision} "
                          f"| {on} | out of memory | | |", flush=True)
                    continue
                rates[jit] = rate
                mfu = rate * flops_per_token(model) / peaks[precision]
                speedup = f"{rates[True] / rates[False]:.2f}x" if jit and False in rates else ""
                print(
                    f"| {model_class.__name__} | {preset} | {model.count_params():,} | "
                    f"{batch_size} x {model.sequence_length} | {precision} | {on} | "
                    f"{rate:,.0f} | {mfu:.1%} | {speedup} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
