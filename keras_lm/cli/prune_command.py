"""keras-lm prune: a smaller model without its least important heads, neurons or units.

Scores every attention head and MLP neuron (LSTM: every unit) of the run in
--model_dir by gradient-weighted magnitude on windows of its training text,
removes the least important until --sparsity of the prunable parameters are
gone (ranked over the whole model, at least one head and one neuron kept
per layer), and writes a smaller real model to --output_dir: a normal run
directory that eval, generate, export and probe read. --recover_steps
fine-tunes it briefly on the base's training text. The base is never
changed. See docs/pruning.md.

Examples:
  keras-lm prune --model_dir=saved_models/quickstart --sparsity=0.25 \\
      --output_dir=saved_models/pruned
  keras-lm prune --model_dir=saved_models/quickstart --sparsity=0.5 \\
      --recover_steps=200 --output_dir=saved_models/pruned50
"""

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.run import Run

FLAGS = flags.FlagValues()
flags.DEFINE_string("model_dir", "saved_models/quickstart", "The trained run to prune "
                    "(never changed).", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "The pruned run's directory (not --model_dir).",
                    flag_values=FLAGS)
flags.DEFINE_float("sparsity", None, "Share of the prunable parameters (attention and MLP "
                   "weights; LSTM weights) to remove, in (0, 1).", flag_values=FLAGS)
flags.DEFINE_integer("recover_steps", 0, "Fine-tuning steps on the base's training text "
                     "after pruning (0: none).", flag_values=FLAGS)
flags.DEFINE_integer("importance_batches", 8, "Batches of training text the importance is "
                     "measured on.", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 8, "Windows per batch (importance, evaluation and "
                     "recovery).", flag_values=FLAGS)
flags.DEFINE_float("learning_rate", None, "Peak learning rate of the recovery (default: "
                   "keras-lm finetune's).", flag_values=FLAGS)
flags.DEFINE_integer("seed", 0, "Random seed of the recovery.", flag_values=FLAGS)
flags.DEFINE_integer("verbose", 1, "0 silent; 1 progress and a summary.", flag_values=FLAGS)


def main():
    Run(FLAGS.model_dir).prune(
        FLAGS.output_dir, FLAGS.sparsity, FLAGS.recover_steps,
        importance_batches=FLAGS.importance_batches, batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate, seed=FLAGS.seed, verbose=FLAGS.verbose)


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
