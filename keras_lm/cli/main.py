"""`keras-lm`: the command line. Each subcommand is a thin absl app."""

import importlib
import os
import sys

from keras_lm.startup import quiet_tensorflow_startup

SUBCOMMANDS = {
    "train": "train a language model on text files (or the built-in corpus)",
    "import": "a pretrained keras-hub causal LM (Gemma 3, GPT-2, Llama 3) as a run directory",
    "eval": "loss, perplexity and bits per byte of a trained model on files",
    "generate": "continue a prompt with a trained model (Keras, SavedModel or LiteRT)",
    "finetune": "adapt a trained model: prompt -> response pairs, more text, LoRA, a classifier",
    "classify": "the label of a text, with a classifier (`finetune --head=classifier`)",
    "explain": "which prompt tokens made the model say that: attributions, HTML page, PNG",
    "prune": "a smaller model: remove the least important heads, neurons or LSTM units",
    "export": "write a SavedModel and LiteRT files (quantized, verified against Keras)",
    "probe": "measure in-context learning: loss by position, ICL score, induction",
    "sweep": "train and score a grid of models on a task; tables and plots against size",
    "serve": "an OpenAI-compatible HTTP API with batching, and a browser playground",
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
    with quiet_tensorflow_startup():
        module = importlib.import_module(f"keras_lm.cli.{name}_command")
        import tensorflow as tf

        tf.config.list_physical_devices()  # device start-up logs, filtered too
    module.run([f"keras-lm {name}"] + argv[2:])


if __name__ == "__main__":
    run()
