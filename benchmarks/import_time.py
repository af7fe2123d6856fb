"""What `import keras_lm` costs over `import keras`, in fresh processes, side by side.

`import keras_lm` imports Keras, TensorFlow and keras-hub and registers every
serialisable class (so `keras.models.load_model` reads our `.keras` files).
Each command runs `--repeats` times, alternating, in a fresh interpreter; the
medians and their difference are printed.

Usage: python benchmarks/import_time.py [--repeats=7]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import keras": "import keras",
    "import keras, keras_lm": "import keras, keras_lm",
}


def seconds(code):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    repeats = parser.parse_args().repeats
    seconds("import keras_lm")  # warm the file cache once
    times = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, code in COMMANDS.items():
            times[name].append(seconds(code))
    medians = {name: statistics.median(values) for name, values in times.items()}
    sys.path.insert(0, os.path.dirname(__file__))
    from common import machine

    print(f"machine: {machine()}; {repeats} fresh processes each, median wall time")
    for name, median in medians.items():
        print(f"{name:<26} {median:6.2f} s")
    extra = medians["import keras, keras_lm"] - medians["import keras"]
    print(f"keras_lm over keras: +{extra:.2f} s ({medians['import keras, keras_lm'] / medians['import keras']:.2f}x)")


if __name__ == "__main__":
    main()
