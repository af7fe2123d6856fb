"""Training throughput (tokens/s) and MFU of both families, XLA on and off.

MFU = model FLOPs per second / a float32 matmul peak measured in the same
run. Model FLOPs per token: 6 x (parameters that multiply: all but the
embedding lookup; a tied output head counts) plus, for the Transformer,
12 x layers x context x width for attention scores and values.

    python benchmarks/train_throughput.py [--steps=10]

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


def tokens_per_second(model_class, preset, batch_size, jit_compile, steps):
    keras.utils.set_random_seed(0)
    model = model_class.from_preset(preset, vocabulary_size=VOCABULARY)
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
    parser.add_argument("--only", default="", help="run only cases whose model name contains this")
    args = parser.parse_args()
    peak = matmul_peak_flops()
    print(f"Machine: {machine()}; float32 matmul peak (2048^2, XLA): {peak / 1e9:.0f} GFLOP/s\n")
    print("| model | preset | parameters | batch x context | XLA | tokens/s | MFU | XLA speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for model_class, preset, batch_size in CASES:
        if args.only not in model_class.__name__:
            continue
        rates = {}
        for jit in (False, True):
            try:
                rate, model = tokens_per_second(model_class, preset, batch_size, jit, args.steps)
            except tf.errors.ResourceExhaustedError:
                print(f"| {model_class.__name__} | {preset} | | {batch_size} | "
                      f"{'on' if jit else 'off'} | out of memory | | |", flush=True)
                continue
            rates[jit] = rate
            mfu = rate * flops_per_token(model) / peak
            speedup = f"{rates[True] / rates[False]:.2f}x" if jit and False in rates else ""
            print(
                f"| {model_class.__name__} | {preset} | {model.count_params():,} | "
                f"{batch_size} x {model.sequence_length} | {'on' if jit else 'off'} | "
                f"{rate:,.0f} | {mfu:.1%} | {speedup} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
