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
import os

from absl import flags

from keras_lm import data
from keras_lm.adaptation.classifier_run import evaluate_run, is_classifier
from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.model_dir import (
    is_pairs_run,
    load_model_dir,
    pair_file_examples,
    run_files,
    run_validation,
)
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
# The flags that read --data, by the kind of run they belong to.
CLASSIFIER_KEYS = ("text_key", "label_key")
PAIR_KEYS = ("prompt_key", "response_key")

def main():
    if FLAGS.batch_size <= 0:
        raise UsageError(f"--batch_size must be > 0, got {FLAGS.batch_size}")
    model, tokenizer, config = load_model_dir(FLAGS.model_dir)
    # The run's kind decides how --data is read: labelled rows or pairs.
    kind = ("classifier" if is_classifier(model) else "pairs" if is_pairs_run(config)
            else "text")
    check_data_flags(kind)
    if kind == "classifier":
        print(json.dumps(evaluate_run(FLAGS.model_dir, FLAGS.data, FLAGS.text_key,
                                      FLAGS.label_key, loaded=(model, tokenizer, config))))
        return
    if kind == "pairs" and not FLAGS.files:
        if FLAGS.data:
            examples = pair_file_examples(FLAGS.data, config, tokenizer, model.sequence_length,
                                          FLAGS.prompt_key, FLAGS.response_key)
            where = os.path.abspath(FLAGS.data)
        else:
            examples = run_validation(config, tokenizer, model.sequence_length)
            where = "validation pairs"
        print(json.dumps({**evaluate_pairs(model, examples, FLAGS.batch_size, tokenizer.pad_id),
                          "data": where}))
        return
    if FLAGS.files:
        files = data.resolve_files(FLAGS.files, "--files")
    else:
        files = run_files(config)[1]
    result = evaluate_files(model, tokenizer, files, batch_size=FLAGS.batch_size)
    result["files"] = len(files)
    print(json.dumps(result))


def check_data_flags(kind):
    """--data and its key flags mean what the run's kind reads; the rest is an error."""
    wrong = {"classifier": PAIR_KEYS, "pairs": CLASSIFIER_KEYS,
             "text": CLASSIFIER_KEYS + PAIR_KEYS}[kind]
    for name in wrong:
        if FLAGS[name].present:
            what = "classifier runs" if name in CLASSIFIER_KEYS else "pair runs"
            raise UsageError(f"--{name}={FLAGS[name].value}: only used with --data on {what}; "
                             f"{FLAGS.model_dir!r} is a {KIND_NAMES[kind]}")
    if kind == "classifier" and FLAGS.files:
        raise UsageError("--files: a classifier run scores labelled rows: pass --data")
    if kind == "pairs" and FLAGS.files and FLAGS.data:
        raise UsageError(f"--data={FLAGS.data}: give pairs (--data) or text (--files), not both")
    if kind == "text" and FLAGS.data:
        raise UsageError(f"--data={FLAGS.data}: labelled rows are for classifier runs and "
                         "pairs for runs fine-tuned on pairs; score this language model on "
                         "text with --files")


KIND_NAMES = {"classifier": "classifier run", "pairs": "run fine-tuned on pairs",
              "text": "language model trained on text"}


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
