"""keras-lm eval: loss, perplexity and bits per byte of a trained model.

Prints one JSON object. Without --files it evaluates on the run's own
validation files (as resolved from its config.json); a run fine-tuned on
prompt -> response pairs (keras-lm finetune) is scored on its own
validation pairs, the response tokens only (response_loss, ...), or on the
pairs of --data (read with the run's keys and template unless
--prompt_key/--response_key are given).

On a classifier run (`keras-lm finetune --head=classifier`): accuracy,
macro-F1 and per-class precision/recall on the run's own validation rows,
or on --data (labelled rows, --text_key/--label_key); also writes
MODEL_DIR/confusion_matrix.png and the same image to TensorBoard.

Examples:
  keras-lm eval --model_dir=saved_models/quickstart
  keras-lm eval --model_dir=saved_models/classify_stdlib --data=labels.csv
  keras-lm eval --model_dir=saved_models/docstrings --data=more_pairs.jsonl
"""

import json

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.run import Run

# Each subcommand has its own flags, so they can share names (--batch_size).
FLAGS = flags.FlagValues()

flags.DEFINE_string(
    "model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
    flag_values=FLAGS)
flags.DEFINE_string(
    "files", None, "Comma-separated files, directories or globs to evaluate on.",
    flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "Windows per batch.", flag_values=FLAGS)
flags.DEFINE_string("data", None, "Classifier runs: labelled rows (.jsonl, .csv, .tsv) to score "
                    "(default: the run's validation rows). Pair runs: prompt -> response "
                    "pairs (.jsonl, .csv, .tsv), scored on the responses.", flag_values=FLAGS)
flags.DEFINE_string("text_key", None, "Classifier runs: the text's key in --data (default: the "
                    "run's).", flag_values=FLAGS)
flags.DEFINE_string("label_key", None, "Classifier runs: the label's key in --data (default: "
                    "the run's).", flag_values=FLAGS)
flags.DEFINE_string("prompt_key", None, "Pair runs: the prompt's key in --data (default: the "
                    "run's).", flag_values=FLAGS)
flags.DEFINE_string("response_key", None, "Pair runs: the response's key in --data (default: "
                    "the run's).", flag_values=FLAGS)

def main():
    print(json.dumps(Run(FLAGS.model_dir).evaluate(
        files=FLAGS.files, data=FLAGS.data, batch_size=FLAGS.batch_size,
        text_key=FLAGS.text_key, label_key=FLAGS.label_key, prompt_key=FLAGS.prompt_key,
        response_key=FLAGS.response_key)))


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
