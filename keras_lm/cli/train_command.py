"""keras-lm train: train a language model and write one output directory.

With no flags it runs the `quickstart` recipe: a byte-level Transformer on the
Python standard library (built in, no download), saved in
saved_models/quickstart. A recipe sets defaults; flags given override them.

Examples:
  keras-lm train
  keras-lm train --recipe=lstm_quickstart
  keras-lm train --train_files='notes/*.txt' --tokenizer=char --steps=2000 \\
      --output_dir=saved_models/notes
"""

import dataclasses
import json

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.data import CORPORA
from keras_lm.errors import UsageError
from keras_lm.models import MODELS
from keras_lm.tokenizers import TOKENIZERS
from keras_lm.training import OPTIMIZERS, RECIPES, TrainConfig, recipe_defaults, train
from keras_lm.training.config import PRECISIONS

_DEFAULTS = {
    **{f.name: f.default for f in dataclasses.fields(TrainConfig)
       if f.default is not dataclasses.MISSING},
    **RECIPES["quickstart"],
}

# Each subcommand has its own flags, so they can share names (--batch_size).
FLAGS = flags.FlagValues()

flags.DEFINE_enum("recipe", "quickstart", list(RECIPES), "Named default configuration.", flag_values=FLAGS)
flags.DEFINE_enum("model", _DEFAULTS["model"], list(MODELS), "Model family.", flag_values=FLAGS)
flags.DEFINE_string("preset", _DEFAULTS["preset"], "Model size: tiny, small or base.", flag_values=FLAGS)
flags.DEFINE_string(
    "model_args", None,
    "Constructor overrides, e.g. 'hidden_dim=256,num_layers=6'.", flag_values=FLAGS)
flags.DEFINE_enum("corpus", _DEFAULTS["corpus"], list(CORPORA),
                  "Built-in corpus used when --train_files is not given.", flag_values=FLAGS)
flags.DEFINE_string("train_files", None, "Comma-separated files, directories or globs.", flag_values=FLAGS)
flags.DEFINE_string(
    "val_files", None,
    "Validation files; default: a deterministic by-file split of the training files.", flag_values=FLAGS)
flags.DEFINE_float("validation_fraction", _DEFAULTS["validation_fraction"],
                   "Share of files held out when --val_files is not given.", flag_values=FLAGS)
flags.DEFINE_enum("tokenizer", _DEFAULTS["tokenizer"], list(TOKENIZERS), "Tokenizer.", flag_values=FLAGS)
flags.DEFINE_integer("sequence_length", _DEFAULTS["sequence_length"], "Context length.", flag_values=FLAGS)
flags.DEFINE_integer("batch_size", _DEFAULTS["batch_size"], "Sequences per step.", flag_values=FLAGS)
flags.DEFINE_integer("steps", _DEFAULTS["steps"], "Training steps.", flag_values=FLAGS)
flags.DEFINE_float("epochs", None, "Passes over the training files (instead of --steps).", flag_values=FLAGS)
flags.DEFINE_integer("eval_interval", _DEFAULTS["eval_interval"],
                     "Steps between validations, samples and backups.", flag_values=FLAGS)
flags.DEFINE_integer("val_steps", _DEFAULTS["val_steps"],
                     "Validation batches per interval (the final evaluation reads all).", flag_values=FLAGS)
flags.DEFINE_enum("optimizer", _DEFAULTS["optimizer"], list(OPTIMIZERS), "Optimizer.", flag_values=FLAGS)
flags.DEFINE_float("learning_rate", _DEFAULTS["learning_rate"], "Peak learning rate.", flag_values=FLAGS)
flags.DEFINE_integer("warmup_steps", None, "Linear warm-up steps (default: 5% of steps).", flag_values=FLAGS)
flags.DEFINE_float("weight_decay", _DEFAULTS["weight_decay"], "Decoupled weight decay.", flag_values=FLAGS)
flags.DEFINE_float("clipnorm", _DEFAULTS["clipnorm"], "Global gradient-norm clip.", flag_values=FLAGS)
flags.DEFINE_float("dropout", None, "Dropout rate (default: the preset's).", flag_values=FLAGS)
flags.DEFINE_enum("precision", _DEFAULTS["precision"], list(PRECISIONS), "Compute precision.", flag_values=FLAGS)
flags.DEFINE_boolean(
    "jit_compile", None, "Compile training with XLA (default: the model family's choice).",
    flag_values=FLAGS)
flags.DEFINE_float("max_train_minutes", None,
                   "Stop training after this many minutes since the start (a safety net).", flag_values=FLAGS)
flags.DEFINE_integer("seed", _DEFAULTS["seed"], "Random seed.", flag_values=FLAGS)
flags.DEFINE_string("output_dir", None, "Output directory (default: saved_models/<recipe>).", flag_values=FLAGS)
flags.DEFINE_multi_string("sample_prompt", None, "Prompt of the logged samples (repeatable).", flag_values=FLAGS)
flags.DEFINE_integer("sample_tokens", _DEFAULTS["sample_tokens"], "Tokens per sample.", flag_values=FLAGS)
flags.DEFINE_float("temperature", _DEFAULTS["temperature"], "Sampling temperature.", flag_values=FLAGS)
flags.DEFINE_integer("verbose", _DEFAULTS["verbose"], "0 silent, 1 progress bar, 2 one line per interval.", flag_values=FLAGS)

_RENAMED = {"sample_prompt": "sample_prompts"}


def config_from_flags():
    """The run's TrainConfig: the recipe's settings, then the flags given."""
    values = recipe_defaults(FLAGS.recipe)
    values["recipe"] = FLAGS.recipe
    for name in _flag_names():
        if FLAGS[name].present:
            values[_RENAMED.get(name, name)] = FLAGS[name].value
    if isinstance(values.get("model_args"), str):
        values["model_args"] = parse_model_args(values["model_args"])
    return TrainConfig(**values)


def parse_model_args(text):
    """'hidden_dim=256,dropout=0.1' -> {'hidden_dim': 256, 'dropout': 0.1}."""
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--model_args: expected name=value, got {item!r}")
        try:
            result[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            result[key.strip()] = raw
    return result


def _flag_names():
    return [f.name for f in FLAGS.get_flags_for_module(__name__) if f.name != "recipe"]


def main():
    config = config_from_flags()
    try:
        train(config)
    except TypeError as error:
        if "unexpected keyword" in str(error) and config.model_args:
            raise UsageError(f"--model_args: {error}") from None
        raise


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
