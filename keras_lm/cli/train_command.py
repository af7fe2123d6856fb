"""keras-lm train: train a language model and write one output directory.

With no flags it runs the `quickstart` recipe: a byte-level Transformer on the
Python standard library (built in, no download), saved in
saved_models/quickstart. A recipe sets defaults; flags given override them.

Examples:
  keras-lm train
  keras-lm train --recipe=lstm_quickstart
  keras-lm train --train_files='notes/*.txt' --tokenizer=char --steps=2000 \\
      --output_dir=saved_models/notes
  keras-lm train --train_files='books/' --tokenizer=sentencepiece --vocab_size=8000 \\
      --normalize=nfkc
  keras-lm train --task=mqar --mqar_num_pairs=8 --sequence_length=64 --vocab_size=256 \\
      --preset=tiny --steps=2000 --output_dir=saved_models/mqar
  keras-lm train --strategy=mirrored --devices=GPU:0,GPU:1 --batch_size=64
  TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
              "task": {"type": "worker", "index": 0}}' \
      keras-lm train --strategy=multi_worker --steps=5000 --output_dir=/shared/run
"""

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.cli.config_flags import FIELDS, define_config_flags, flag_of, given_settings
from keras_lm.cli.task_flags import define_task_flags, task_args_from
from keras_lm.training import RECIPES, TrainConfig, train

# Each subcommand has its own flags, so they can share names (--batch_size).
FLAGS = flags.FlagValues()
# Every setting but the task's parameters, which have flags of their own
# (and the recipe, which is `from_recipe`'s first argument).
SETTINGS = [name for name in FIELDS if name not in ("task", "task_args")]
GIVEN = [name for name in SETTINGS if name != "recipe"]
define_config_flags(FLAGS, __name__, SETTINGS,
                    defaults={**RECIPES["quickstart"], "recipe": "quickstart"})
define_task_flags(FLAGS, __name__)


def config_from_flags():
    """The run's TrainConfig: `TrainConfig.from_recipe` with the flags given."""
    return TrainConfig.from_recipe(FLAGS.recipe, task=FLAGS.task, task_args=task_args_from(FLAGS),
                                   **given_settings(FLAGS, GIVEN))


def main():
    train(config_from_flags())


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__, flag_of)
