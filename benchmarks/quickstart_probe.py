"""Throughput of candidate quickstart shapes, side by side in one run.

Used to choose the `quickstart` recipe: tokens/s for each (width, depth,
context, batch, precision, XLA) candidate, on random byte tokens.

    python benchmarks/quickstart_probe.py [--steps=10]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import machine  # noqa: E402
from keras_lm.models import TransformerLM  # noqa: E402

CANDIDATES = [
    # hidden, layers, heads, context, batch, precision, xla
    (128, 4, 4, 256, 32, "float32", False),
    (128, 4, 4, 256, 32, "float32", True),
    (128, 4, 4, 256, 32, "mixed_bfloat16", False),
    (128, 4, 4, 256, 32, "mixed_bfloat16", True),
    (192, 4, 4, 256, 32, "float32", False),
    (192, 4, 4, 256, 32, "mixed_bfloat16", False),
    (192, 4, 4, 128, 64, "float32", False),
    (256, 4, 4, 256, 32, "mixed_bfloat16", False),
]


def measure(hidden, layers, heads, context, batch, precision, xla, steps):
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    model = TransformerLM(259, context, layers, heads, hidden)
    model.compile("adamw", learning_rate=1e-3, jit_compile=xla)
    tokens = np.random.default_rng(0).integers(0, 256, (batch * 4, context + 1), np.int32)
    data = tf.data.Dataset.from_tensor_slices((tokens[:, :-1], tokens[:, 1:]))
    data = data.repeat().batch(batch, drop_remainder=True).prefetch(2)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    rate = steps * batch * context / (time.perf_counter() - start)
    keras.config.set_dtype_policy("float32")
    return rate, model.count_params()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print("| hidden | layers | context | batch | precision | XLA | parameters | tokens/s |")
    print("|---|---|---|---|---|---|---|---|")
    for candidate in CANDIDATES:
        rate, params = measure(*candidate, steps=args.steps)
        hidden, layers, _, context, batch, precision, xla = candidate
        print(f"| {hidden} | {layers} | {context} | {batch} | {precision} | "
              f"{'on' if xla else 'off'} | {params:,} | {rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
