"""`keras-lm`: the command line. Each subcommand is a thin absl app."""

import contextlib
import importlib
import os
import sys
import tempfile

SUBCOMMANDS = {
    "train": "train a language model on text files (or the built-in corpus)",
    "eval": "loss, perplexity and bits per byte of a trained model on files",
    "generate": "continue a prompt with a trained model (Keras, SavedModel or LiteRT)",
    "export": "write a SavedModel and LiteRT files (quantized, verified against Keras)",
    "probe": "measure in-context learning: loss by position, ICL score, induction",
    "sweep": "train and score a grid of models on a task; tables and plots against size",
}

USAGE = "usage: keras-lm <subcommand> [--flag=value ...]\n\nsubcommands:\n" + "".join(
    f"  {name:<10} {text}\n" for name, text in SUBCOMMANDS.items()
) + "\n`keras-lm <subcommand> --help` lists the subcommand's flags."


def run(argv=None):
    """Entry point of the `keras-lm` console script."""
    argv = list(sys.argv if argv is None else argv)
    # Before TensorFlow is imported: its C++ start-up logs drown our output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stdout if len(argv) >= 2 else sys.stderr)
        sys.exit(0 if len(argv) >= 2 else 2)
    name = argv[1]
    if name not in SUBCOMMANDS:
        print(
            f"keras-lm: error: unknown subcommand {name!r}; choose from {', '.join(SUBCOMMANDS)}",
            file=sys.stderr,
        )
        sys.exit(2)
    with _filtered_stderr():
        module = importlib.import_module(f"keras_lm.cli.{name}_command")
        import tensorflow as tf

        tf.config.list_physical_devices()  # device start-up logs, filtered too
    module.run([f"keras-lm {name}"] + argv[2:])


@contextlib.contextmanager
def _filtered_stderr():
    """Drops TensorFlow's C++ start-up INFO lines from stderr; keeps the rest.

    They are printed before absl logging is initialised, so neither
    TF_CPP_MIN_LOG_LEVEL nor absl's verbosity reaches them.
    """
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode("utf-8", "replace").splitlines(True):
                if not _is_startup_noise(line):
                    sys.stderr.write(line)


def _is_startup_noise(line):
    return line.startswith(("I0000 ", "WARNING: All log messages before absl")) or (
        line.startswith("E0000 ") and "cuInit" in line  # no GPU driver: expected on CPU
    )


if __name__ == "__main__":
    run()
