"""Shared helpers of the benchmark scripts: machine facts and a matmul peak."""

import os
import platform
import time

import tensorflow as tf


def machine():
    """A one-line description of where the figures were measured."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )


def matmul_peak_flops(size=2048, dtype=tf.float32, seconds=3.0):
    """Measured FLOP/s of a square matmul on this machine, now (the MFU denominator)."""
    a = tf.random.normal((size, size), dtype=tf.float32)
    a = tf.cast(a, dtype)

    @tf.function(jit_compile=True)
    def matmul(x):
        return tf.matmul(x, x)

    matmul(a).numpy()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        matmul(a).numpy()
        count += 1
    return 2 * size**3 * count / (time.perf_counter() - start)
