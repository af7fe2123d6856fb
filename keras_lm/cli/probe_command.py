"""keras-lm probe: measure in-context learning in a trained model.

Probes:
  per_position_loss  mean loss at every position of the context window
  icl_score          loss at a late token minus an early one (Olsson et al. 2022:
                     tokens 500 and 50 of 512, scaled to the model's context)
  induction          loss and accuracy on repeated random tokens: the repeat vs
                     the first copy
  induction_heads    attention of each head to where it could copy from
                     (Transformer runs only)

Prints the result as one JSON object and writes MODEL_DIR/probes/PROBE.json,
a PNG beside it, and TensorBoard summaries under MODEL_DIR/logs/probes. Text
runs read their validation files (or --files); --task runs their task's
validation stream.

Example:
  keras-lm probe --model_dir=saved_models/quickstart --probe=icl_score
"""

import json

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.probes.runner import run_probe

FLAGS = flags.FlagValues()

flags.DEFINE_string("model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
                    flag_values=FLAGS)
flags.DEFINE_string("probe", "icl_score",
                    "per_position_loss, icl_score, induction or induction_heads.",
                    flag_values=FLAGS)
flags.DEFINE_string("files", None, "Text files to probe on (default: the run's validation files).",
                    flag_values=FLAGS)
flags.DEFINE_integer("batches", 16, "Batches of windows to average over.", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "Windows per batch.", flag_values=FLAGS)


def main():
    result = run_probe(FLAGS.model_dir, FLAGS.probe, FLAGS.files, FLAGS.batches, FLAGS.batch_size)
    print(json.dumps(result))


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
