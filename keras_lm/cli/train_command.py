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

import dataclasses
import functools
import json

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.cli.task_flags import define_task_flags, task_args_from
from keras_lm.data import CORPORA
from keras_lm.errors import UsageError
from keras_lm.models import MODELS
from keras_lm.tokenizers import NORMALIZATIONS, TOKENIZERS
from keras_lm.training import OPTIMIZERS, RECIPES, TrainConfig, recipe_defaults, train
from keras_lm.training.config import PRECISIONS
from keras_lm.training.distribute import STRATEGIES

_DEFAULTS = {
    **{f.name: f.default for f in dataclasses.fields(TrainConfig)
       if f.default is not dataclasses.MISSING},
    **RECIPES["quickstart"],
}

# Each subcommand has its own flags, so they can share names (--batch_size).
FLAGS = flags.FlagValues()
string, integer, number, enum, boolean = (
    functools.partial(define, flag_values=FLAGS)
    for define in (flags.DEFINE_string, flags.DEFINE_integer, flags.DEFINE_float,
                   flags.DEFINE_enum, flags.DEFINE_boolean)
)
D = _DEFAULTS

enum("recipe", "quickstart", list(RECIPES), "Named default configuration.")
enum("model", D["model"], list(MODELS), "Model family.")
string("preset", D["preset"], "Model size: tiny, small or base.")
string("model_args", None, "Constructor overrides, e.g. 'hidden_dim=256,num_layers=6'.")
enum("corpus", D["corpus"], list(CORPORA), "Built-in corpus used without --train_files.")
define_task_flags(FLAGS, __name__)
string("train_files", None, "Comma-separated files, directories or globs.")
string("val_files", None, "Validation files (default: a by-file split of the training files).")
number("validation_fraction", D["validation_fraction"], "Share of files held out.")
enum("tokenizer", D["tokenizer"], list(TOKENIZERS),
     "byte, char, or a subword vocabulary learned from (a sample of) the training files.")
integer("vocab_size", None,
        "Vocabulary size: wordpiece/sentencepiece (default 4096), the maximum for char.")
enum("sentencepiece_model_type", D["sentencepiece_model_type"], ["unigram", "bpe"],
     "SentencePiece algorithm.")
enum("normalize", D["normalize"], list(NORMALIZATIONS),
     "Unicode normalisation before tokenising (training, generation and export alike).")
integer("sequence_length", D["sequence_length"], "Context length in tokens.")
integer("batch_size", D["batch_size"], "Sequences per step.")
integer("steps", D["steps"], "Training steps.")
number("epochs", None, "Passes over the training files (instead of --steps).")
integer("eval_interval", D["eval_interval"], "Steps between validations, samples, backups.")
integer("val_steps", D["val_steps"], "Validation batches per interval (the end reads all).")
enum("optimizer", D["optimizer"], list(OPTIMIZERS), "Optimizer.")
number("learning_rate", D["learning_rate"], "Peak learning rate.")
integer("warmup_steps", None, "Linear warm-up steps (default: 5% of the steps).")
number("weight_decay", D["weight_decay"], "Decoupled weight decay.")
number("clipnorm", D["clipnorm"], "Global gradient-norm clip.")
number("dropout", None, "Dropout rate (default: the preset's).")
enum("precision", D["precision"], list(PRECISIONS), "Compute precision.")
boolean("jit_compile", None, "Compile training with XLA (default: the family's choice).")
number("train_minutes", D.get("train_minutes"),
       "Train until this many minutes after the start, the learning-rate schedule "
       "following the clock (--steps becomes an upper bound). Giving --steps or "
       "--epochs alone turns a recipe's clock off.")
integer("seed", D["seed"], "Random seed.")
string("output_dir", None, "Output directory (default: saved_models/<recipe>).")
flags.DEFINE_multi_string("sample_prompt", None, "Prompt of the samples (repeatable).",
                          flag_values=FLAGS)
integer("sample_tokens", D["sample_tokens"], "Tokens per sample.")
number("temperature", D["temperature"], "Sampling temperature of the samples.")
integer("verbose", D["verbose"], "0 silent, 1 progress bar, 2 one line per interval.")
boolean("samples", D["samples"], "Write samples to TensorBoard's text tab and samples.txt.")
boolean("attention_maps", D["attention_maps"],
        "TensorBoard images of every layer's and head's attention on a probe text "
        "(Transformer only).")
boolean("position_loss", D["position_loss"],
        "TensorBoard image of the validation loss by position in the context.")
boolean("embedding_projector", D["embedding_projector"],
        "The token embedding and its tokens for TensorBoard's Projector tab.")
boolean("hparams", D["hparams"],
        "The run's settings and final metrics for TensorBoard's HParams tab.")
boolean("histograms", D["histograms"], "TensorBoard histograms of the weights per layer.")
string("profile_steps", None,
       "Trace training steps 'first,last' (e.g. '5,7') for TensorBoard's profile tab.")
enum("strategy", D["strategy"], list(STRATEGIES),
     "tf.distribute strategy: default (one device), mirrored (this machine's devices), "
     "multi_worker (the cluster in TF_CONFIG), tpu. --batch_size stays the global batch.")
string("devices", None,
       "Devices of --strategy=mirrored, e.g. 'GPU:0,GPU:1', or 'CPU:0,CPU:1' to split "
       "the CPU into logical devices (default: every GPU, else the CPU).")

_RENAMED = {"sample_prompt": "sample_prompts"}


def config_from_flags():
    """The run's TrainConfig: the recipe's settings, then the flags given."""
    values = recipe_defaults(FLAGS.recipe)
    values["recipe"] = FLAGS.recipe
    values["task_args"] = task_args_from(FLAGS)
    for name in _flag_names():
        if FLAGS[name].present and name not in values["task_args"]:
            values[_RENAMED.get(name, name)] = FLAGS[name].value
    # A run length given in steps or epochs replaces a recipe's clock.
    if (FLAGS["steps"].present or FLAGS["epochs"].present) and not FLAGS["train_minutes"].present:
        values["train_minutes"] = None
    if isinstance(values.get("model_args"), str):
        values["model_args"] = parse_model_args(values["model_args"])
    if values.get("profile_steps") is not None:
        values["profile_steps"] = parse_profile_steps(values["profile_steps"])
    return TrainConfig(**values)


def parse_profile_steps(text):
    """'5,7' -> (5, 7): the first and last training step to trace."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise UsageError(f"--profile_steps: expected two step numbers 'first,last', got {text!r}")
    return int(parts[0]), int(parts[1])


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
    train(config_from_flags())


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
