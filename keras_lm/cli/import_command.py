"""keras-lm import: a pretrained keras-hub causal LM as a keras_lm run directory.

Examples (with internet access; not run in the tests):
  keras-lm import --preset=gemma3_instruct_270m --output_dir=runs/gemma3_270m
  keras-lm import --preset=hf://google/gemma-3-270m-it --output_dir=runs/gemma3_hf
Offline, from a local keras-hub preset or Hugging Face checkpoint directory:
  keras-lm import --preset=path/to/preset --output_dir=runs/mine

The directory then works with every `--model_dir` command (eval, generate,
finetune, serve, ...) and with `keras_lm.load`. Supported families: GPT-2,
Gemma 3 (text), Llama 3, Qwen 3. Prints one JSON line: the run directory,
its source, architecture and parameter count.
"""

import json

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.pretrained import import_preset
from keras_lm.run import Run

FLAGS = flags.FlagValues()
flags.DEFINE_string("preset", None, "A keras-hub preset name, a kaggle:// or hf:// handle, or a "
                    "local keras-hub preset or Hugging Face checkpoint directory.",
                    flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "The run directory to write (must not exist, or be "
                    "empty).", flag_values=FLAGS)
flags.DEFINE_integer("sequence_length", None, "The context the run uses (default: GPT-2's "
                     "positions, else the preset's preprocessor's).", flag_values=FLAGS)


def main():
    if not FLAGS.preset:
        raise UsageError("--preset: give a preset name, handle or directory, got none")
    if not FLAGS.output_dir:
        raise UsageError("--output_dir: give the run directory to write, got none")
    path = import_preset(FLAGS.preset, FLAGS.output_dir, sequence_length=FLAGS.sequence_length)
    config = Run(path).config
    print(json.dumps({"output_dir": path, **{k: config[k] for k in
                                             ("source", "architecture", "parameters")}}))


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
