"""keras-lm eval: loss, perplexity and bits per byte of a trained model.

Prints one JSON object. Without --files it evaluates on the run's own
validation files (as resolved from its config.json); a run fine-tuned on
prompt -> response pairs (keras-lm finetune) is scored on its own
validation pairs, the response tokens only (response_loss, ...).

On a classifier run (`keras-lm finetune --head=classifier`): accuracy,
macro-F1 and per-class precision/recall on the run's own validation rows,
or on --data (labelled rows, --text_key/--label_key); also writes
MODEL_DIR/confusion_matrix.png and the same image to TensorBoard.

Examples:
  keras-lm eval --model_dir=saved_models/quickstart
  keras-lm eval --model_dir=saved_models/classify_stdlib --data=labels.csv
"""

import json

from absl import flags

from keras_lm import data
from keras_lm.adaptation.classifier_run import evaluate_run, is_classifier
from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.model_dir import is_pairs_run, load_model_dir, run_files, run_validation
from keras_lm.scoring import evaluate_files, evaluate_pairs

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
                    "(default: the run's validation rows).", flag_values=FLAGS)
flags.DEFINE_string("text_key", None, "Classifier runs: the text's key in --data (default: the "
                    "run's).", flag_values=FLAGS)
flags.DEFINE_string("label_key", None, "Classifier runs: the label's key in --data (default: "
                    "the run's).", flag_values=FLAGS)



def main():
    if FLAGS.batch_size <= 0:
        raise UsageError(f"--batch_size must be > 0, got {FLAGS.batch_size}")
    model, tokenizer, config = load_model_dir(FLAGS.model_dir)
    if is_classifier(model):
        if FLAGS.files:
            raise UsageError("--files: a classifier run scores labelled rows: pass --data")
        print(json.dumps(evaluate_run(FLAGS.model_dir, FLAGS.data, FLAGS.text_key,
                                      FLAGS.label_key, loaded=(model, tokenizer, config))))
        return
    if FLAGS.data:
        raise UsageError("--data: labelled rows are for classifier runs; score a language "
                         "model on text with --files")
    if not FLAGS.files and is_pairs_run(config):
        examples = run_validation(config, tokenizer, model.sequence_length)
        print(json.dumps({**evaluate_pairs(model, examples, FLAGS.batch_size, tokenizer.pad_id),
                          "data": "validation pairs"}))
        return
    if FLAGS.files:
        files = data.resolve_files(FLAGS.files, "--files")
    else:
        files = run_files(config)[1]
    result = evaluate_files(model, tokenizer, files, batch_size=FLAGS.batch_size)
    result["files"] = len(files)
    print(json.dumps(result))


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
