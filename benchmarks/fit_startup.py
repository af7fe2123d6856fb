"""The start of `fit`: the optimizer built before the first trace, or inside it (Keras).

With no tf.distribute strategy, Keras 3 builds the optimizer inside the first
trace of the train step; TensorFlow then traces the step twice, once to lift
the new variables out. `LanguageModel.make_train_function` builds it first
(`keras_lm.compat.build_optimizer`). This times a `fit` of `--steps` steps
of a fresh model both ways, alternating, in one process, and prints the
median of each and their ratio, with the traces of the step counted.

Usage: python benchmarks/fit_startup.py [--preset=tiny] [--steps=2] [--repeats=5]
    [--jit_compile]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from common import machine  # noqa: E402
from keras_lm.models import TransformerLM  # noqa: E402


class Counted(TransformerLM):
    """keras_lm's model, counting the traces of its train step."""

    traces = 0

    def train_step(self, data):
        type(self).traces += 1
        return super().train_step(data)


class BuiltInsideTheTrace(Counted):
    """The same model with Keras' own `make_train_function` (no early build)."""

    traces = 0

    def make_train_function(self, force=False):
        return keras.Model.make_train_function(self, force)


def fit_seconds(family, args):
    model = family.from_preset(args.preset, vocabulary_size=259, sequence_length=64)
    model.compile("adamw", learning_rate=1e-3, jit_compile=args.jit_compile)
    ids = np.random.default_rng(0).integers(0, 256, (8 * args.steps, 65)).astype("int32")
    start = time.perf_counter()
    model.fit(ids[:, :-1], ids[:, 1:], batch_size=8, epochs=1, verbose=0)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jit_compile", action="store_true")
    args = parser.parse_args()
    fit_seconds(Counted, args)  # the first fit of a process also pays one-off costs
    families = {"built before the trace (keras_lm)": Counted,
                "built inside the trace (Keras)": BuiltInsideTheTrace}
    times = {name: [] for name in families}
    traces_before = {name: family.traces for name, family in families.items()}
    for _ in range(args.repeats):
        for name, family in families.items():
            times[name].append(fit_seconds(family, args))
    print(f"machine: {machine()}")
    print(f"fit of {args.steps} steps, preset {args.preset}, batch 8 x 64, "
          f"jit_compile={args.jit_compile}; {args.repeats} fresh models each, alternating")
    for name, family in families.items():
        traces = (family.traces - traces_before[name]) / args.repeats
        print(f"{name:<36} median {statistics.median(times[name]):6.2f} s, "
              f"{traces:.0f} trace(s) of the step per fit")
    medians = [statistics.median(values) for values in times.values()]
    print(f"ratio (keras_lm / Keras): {medians[0] / medians[1]:.2f}")


if __name__ == "__main__":
    main()
