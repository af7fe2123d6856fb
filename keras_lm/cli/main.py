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
    """Entry point of the `keras-lm` console script.

    Called with no `argv` (the console script, `python -m keras_lm.cli.main`),
    the process ends without the interpreter's teardown once the subcommand
    is done (see `exit_without_teardown`); with `argv` (in-process callers,
    the tests) it raises `SystemExit` as usual.
    """
    whole_process = argv is None
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
    if not whole_process:
        module.run([f"keras-lm {name}"] + argv[2:])
        return
    try:
        module.run([f"keras-lm {name}"] + argv[2:])
        code = 0
    except SystemExit as finished:  # absl's app.run always ends this way
        code = finished.code
    exit_without_teardown(code)


def exit_without_teardown(code):
    """Ends the process with `code` (SystemExit's: None, an int or a message), skipping
    the interpreter's teardown.

    After a training run, tearing down TensorFlow's and XLA's objects took
    longer than writing the outputs (tens of seconds under load): the
    command's work is done and every file keras_lm writes is closed, so
    the atexit handlers (logging's flush among them) run, stdout and
    stderr are flushed, and `os._exit` ends the process.
    """
    import atexit

    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # CPython's own; what a normal exit runs first
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
