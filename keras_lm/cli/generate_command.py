"""keras-lm generate: continue a prompt with a trained model.

Example:
  keras-lm generate --model_dir=saved_models/quickstart --prompt='def ' \\
      --max_new_tokens=200 --temperature=0.8 --seed=1
"""

import sys

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.generation import generate
from keras_lm.model_dir import load_model_dir

# Each subcommand has its own flags, so they can share names (--batch_size).
FLAGS = flags.FlagValues()

flags.DEFINE_string(
    "model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
    flag_values=FLAGS)
flags.DEFINE_string(
    "prompt", "", "Text to continue (empty: start a new document).", flag_values=FLAGS)
flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate at most.", flag_values=FLAGS)
flags.DEFINE_float("temperature", 0.0, "0 for greedy decoding, > 0 to sample.", flag_values=FLAGS)
flags.DEFINE_integer("seed", None, "Seed that makes sampling reproducible.", flag_values=FLAGS)



def main():
    if FLAGS.max_new_tokens <= 0:
        raise UsageError(f"--max_new_tokens must be > 0, got {FLAGS.max_new_tokens}")
    if FLAGS.temperature < 0:
        raise UsageError(f"--temperature must be >= 0, got {FLAGS.temperature}")
    model, tokenizer, _ = load_model_dir(FLAGS.model_dir)
    text = generate(
        model, tokenizer, FLAGS.prompt, FLAGS.max_new_tokens, FLAGS.temperature, FLAGS.seed
    )
    sys.stdout.write(FLAGS.prompt + text + "\n")


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
