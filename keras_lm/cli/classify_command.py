"""keras-lm classify: the label of each text, with a classifier run.

Prints one JSON object per text, in order: the input (the text, or the
file's path), the label and the probability of every label.

Examples:
  keras-lm classify --model_dir=saved_models/classify_stdlib --text=get_event_loop
  keras-lm classify --model_dir=runs/sentiment --text='great film' --text='dull'
  keras-lm classify --model_dir=runs/topics --files=notes/*.txt

A file is one text (all of it; longer than the classifier's context, its
beginning is kept).
"""

import json

from absl import flags

from keras_lm import data
from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.run import Run

FLAGS = flags.FlagValues()

flags.DEFINE_string("model_dir", None, "A classifier run (`keras-lm finetune --head=classifier`).",
                    flag_values=FLAGS)
flags.DEFINE_multi_string("text", [], "A text to classify (repeatable).", flag_values=FLAGS)
flags.DEFINE_string("files", None, "Comma-separated files, directories or globs: each file is "
                    "one text.", flag_values=FLAGS)


def main():
    if not FLAGS.model_dir:
        raise UsageError("--model_dir: give a classifier run directory, got none")
    if not FLAGS.text and not FLAGS.files:
        raise UsageError("--text: give --text (repeatable) or --files, got neither")
    paths = data.resolve_files(FLAGS.files, "--files") if FLAGS.files else []
    run = Run(FLAGS.model_dir)
    run.require(("classifier",), "classify")  # before any file is read
    inputs = list(FLAGS.text)
    texts = list(FLAGS.text)
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            texts.append(f.read())
        inputs.append(path)
    for given, result in zip(inputs, run.classify(texts)):
        key = "file" if given in paths else "text"
        print(json.dumps({key: given, **result}, ensure_ascii=False))


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
