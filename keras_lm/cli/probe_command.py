"""keras-lm probe: measure in-context learning in a trained model.

Probes:
  per_position_loss  mean loss at every position of the context window
  icl_score          loss at a late token minus an early one (Olsson et al. 2022:
                     tokens 500 and 50 of 512, scaled to the model's context)
  induction          loss and accuracy on repeated random tokens: the repeat vs
                     the first copy
  induction_heads    attention of each head to where it could copy from
                     (Transformer runs only)
  fewshot_classify   accuracy on labelled rows (--data) against the number of
                     labelled examples (--shots): in the prompt (each label
                     scored by its likelihood) and fine-tuning a classifier
                     on the same examples; also writes PROBE.md (the table)

Prints the result as one JSON object and writes MODEL_DIR/probes/PROBE.json,
a PNG beside it, and TensorBoard summaries under MODEL_DIR/logs/probes. Text
runs read their validation files (or --files); --task runs their task's
validation stream.

Examples:
  keras-lm probe --model_dir=saved_models/quickstart --probe=icl_score
  keras-lm probe --probe=fewshot_classify --data=labels.csv --shots=0,1,2,4,8
  keras-lm probe --probe=fewshot_classify --data=classify_stdlib --shots=0,1,2,4,8,32,128
"""

import json

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.probes.fewshot_classify import PROBE as FEWSHOT, fewshot_classify
from keras_lm.probes.runner import run_probe

FLAGS = flags.FlagValues()

flags.DEFINE_string("model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
                    flag_values=FLAGS)
flags.DEFINE_string("probe", "icl_score",
                    "per_position_loss, icl_score, induction, induction_heads or "
                    "fewshot_classify.",
                    flag_values=FLAGS)
flags.DEFINE_string("files", None, "Text files to probe on (default: the run's validation files).",
                    flag_values=FLAGS)
flags.DEFINE_integer("batches", 16, "Batches of windows to average over.", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", 32, "Windows per batch.", flag_values=FLAGS)
flags.DEFINE_string("data", None, "fewshot_classify: labelled rows (.jsonl, .csv, .tsv), or "
                    "classify_stdlib (built in).", flag_values=FLAGS)
flags.DEFINE_list("shots", ["0", "1", "2", "4", "8"],
                  "fewshot_classify: numbers of labelled examples.", flag_values=FLAGS)
flags.DEFINE_string("text_key", "text", "fewshot_classify: the text's key in --data.",
                    flag_values=FLAGS)
flags.DEFINE_string("label_key", "label", "fewshot_classify: the label's key in --data.",
                    flag_values=FLAGS)
flags.DEFINE_integer("finetune_steps", 60,
                     "fewshot_classify: steps of fine-tuning on the examples.", flag_values=FLAGS)
flags.DEFINE_integer("repeats", 1, "fewshot_classify: draws of the examples averaged over.",
                     flag_values=FLAGS)


def main():
    if FLAGS.probe == FEWSHOT:
        if not FLAGS.data:
            raise UsageError("--data: fewshot_classify needs labelled rows, got none")
        result = fewshot_classify(FLAGS.model_dir, FLAGS.data, FLAGS.shots,
                                  text_key=FLAGS.text_key, label_key=FLAGS.label_key,
                                  repeats=FLAGS.repeats, finetune_steps=FLAGS.finetune_steps)
    else:
        for flag in ("data", "shots", "finetune_steps", "repeats"):
            if FLAGS[flag].present:
                raise UsageError(f"--{flag}: only for --probe={FEWSHOT}")
        result = run_probe(FLAGS.model_dir, FLAGS.probe, FLAGS.files, FLAGS.batches,
                           FLAGS.batch_size)
    print(json.dumps(result))


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
