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

flags.DEFINE_string("model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.")
flags.DEFINE_string("prompt", "", "Text to continue (empty: start a new document).")
flags.DEFINE_integer("max_new_tokens", 200, "Tokens to generate at most.")
flags.DEFINE_float("temperature", 0.0, "0 for greedy decoding, > 0 to sample.")
flags.DEFINE_integer("seed", None, "Seed that makes sampling reproducible.")

FLAGS = flags.FLAGS


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
    run_subcommand(main, argv, __name__, __doc__)
