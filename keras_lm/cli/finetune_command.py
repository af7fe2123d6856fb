"""keras-lm finetune: adapt a trained model to a task; writes a new run directory.

Starts from BASE (--model_dir: a `keras-lm train` or `finetune` output
directory), never changes it, and writes --output_dir, a normal run
directory that eval, generate, export and probe read (config.json records
the base).

Examples:
  keras-lm finetune --recipe=docstring_to_code --output_dir=saved_models/docstrings
  keras-lm finetune --model_dir=saved_models/quickstart --data=pairs.jsonl \\
      --output_dir=saved_models/pairs --steps=500
  keras-lm finetune --data=pairs.csv --prompt_key=question --response_key=answer \\
      --template='Q: {prompt}\\nA: ' --lora_rank=8 --save_adapters --output_dir=saved_models/qa
  keras-lm finetune --train_files='notes/*.txt' --output_dir=saved_models/notes
  keras-lm finetune --adapters=saved_models/qa/adapters.npz --data=more.jsonl \\
      --output_dir=saved_models/qa2
  keras-lm finetune --head=classifier --data=labels.csv --text_key=text \\
      --label_key=label --output_dir=saved_models/labels
  keras-lm finetune --recipe=classify_stdlib   # -> saved_models/classify_stdlib

--data: prompt -> response pairs (.jsonl, .csv, .tsv); the loss and the
metrics count the response tokens only. --train_files: more text, trained
as `keras-lm train` does (continued training). --lora_rank: train LoRA
adapters instead of every weight (Transformer only); model.keras holds them
merged. --head=classifier: a text classifier on the base (keras-lm classify);
with --lora_rank, LoRA on the base and the new head trained fully.
--recipe: docstring_to_code (pairs) or classify_stdlib (a classifier); its
settings are defaults, the flags given override them.
The tokenizer, the model and its context are the base's. See
docs/adaptation.md.
"""

import dataclasses

from absl import flags

from keras_lm.adaptation.config import FinetuneConfig
from keras_lm.adaptation.finetune import finetune
from keras_lm.adaptation.recipes import recipe_head
from keras_lm.cli.app import run_subcommand
from keras_lm.cli.config_flags import define_config_flags, flag_of, given_settings
from keras_lm.errors import UsageError

FLAGS = flags.FlagValues()
FIELDS = {field.name: field for field in dataclasses.fields(FinetuneConfig)}
# The settings with flags: fine-tuning's own, and the training settings that
# apply to it (not the model's, the tokenizer's or tf.distribute's: the base's).
SETTINGS = [
    "recipe", "base_dir", "output_dir", "data", "val_data", "prompt_key", "response_key",
    "template", "train_files", "val_files", "validation_fraction",
    "lora_rank", "lora_alpha", "lora_targets", "save_adapters", "adapters",
    "steps", "epochs", "train_minutes", "batch_size", "eval_interval", "val_steps",
    "optimizer", "learning_rate", "warmup_steps", "weight_decay", "clipnorm", "jit_compile",
    "seed", "sample_prompts", "sample_tokens", "temperature", "shuffle_buffer", "verbose",
    "samples", "attention_maps", "position_loss", "embedding_projector", "hparams",
    "histograms",
    # Given, these are an error: fine-tuning keeps the base's tokenizer.
    "tokenizer", "vocabulary_size", "normalize", "sentencepiece_model_type",
]
HEADS = ("lm", "classifier")
define_config_flags(FLAGS, __name__, SETTINGS, fields=FIELDS)
flags.DEFINE_enum("head", "lm", list(HEADS), "lm: a language model (pairs or text); "
                  "classifier: a text classifier on the base (labels in --data). "
                  "--recipe=classify_stdlib implies classifier.", flag_values=FLAGS)
flags.DEFINE_string("text_key", "text", "--head=classifier: the text's field in --data.",
                    flag_values=FLAGS)
flags.DEFINE_string("label_key", "label", "--head=classifier: the label's field in --data.",
                    flag_values=FLAGS)
flags.DEFINE_enum("pooling", "last", ["last", "mean"], "--head=classifier: the <eos> "
                  "position's features (last) or their mean over the text (mean).",
                  flag_values=FLAGS)
flags.DEFINE_integer("max_length", None, "--head=classifier: the longest input in tokens "
                     "(default: the base's context); longer texts keep their beginning.",
                     flag_values=FLAGS)
CLASSIFIER_FLAGS = ("text_key", "label_key", "pooling", "max_length")
# The settings a classifier run reads from the flags (besides the base, output and data);
# the other fine-tuning settings are an error with --head=classifier. The
# tokenizer's are passed on to be refused with their own message.
CLASSIFIER_SETTINGS = ("val_data", "steps", "batch_size", "learning_rate", "seed", "verbose",
                       "jit_compile", "lora_rank", "lora_alpha", "lora_targets")
CLASSIFIER_READS = {"recipe", "base_dir", "output_dir", "data", *CLASSIFIER_SETTINGS,
                    "tokenizer", "vocabulary_size", "normalize", "sentencepiece_model_type"}


def config_from_flags():
    """The run's FinetuneConfig: `FinetuneConfig.from_recipe` with the flags given."""
    given = given_settings(FLAGS, SETTINGS, FIELDS)
    given.pop("recipe", None)
    return FinetuneConfig.from_recipe(FLAGS.recipe, **given)


def head_from_flags():
    """`--head`, or the recipe's head (a recipe trains one kind of head)."""
    if not FLAGS.recipe:
        return FLAGS.head
    head = recipe_head(FLAGS.recipe)
    if FLAGS["head"].present and FLAGS.head != head:
        raise UsageError(f"--head={FLAGS.head}: --recipe={FLAGS.recipe} trains a {head} "
                         f"head (--head={head}); leave --head out or choose another recipe")
    return head


def main():
    if head_from_flags() == "classifier":
        return main_classifier()
    for name in CLASSIFIER_FLAGS:
        if FLAGS[name].present:
            raise UsageError(f"--{name}={FLAGS[name].value}: only used with --head=classifier")
    finetune(config_from_flags())


def main_classifier():
    """`--head=classifier` (or its recipe): `ClassifierConfig.from_recipe` with the flags
    given, run by `keras_lm.adaptation.classifier.finetune_classifier`."""
    given = given_settings(FLAGS, SETTINGS, FIELDS)
    for name in given:
        if name in ("save_adapters", "adapters"):
            flag = flag_of(name, FIELDS)[2:]
            raise UsageError(f"--{flag}={FLAGS[flag].value}: adapter files are for language "
                             "models (--head=lm) only; a classifier's new head trains too, and "
                             "its model.keras holds LoRA merged")
        if name not in CLASSIFIER_READS:
            flag = flag_of(name, FIELDS)[2:]
            raise UsageError(f"--{flag}={FLAGS[flag].value}: not used with --head=classifier")
    given.pop("recipe", None)
    given.update({k: FLAGS[k].value for k in CLASSIFIER_FLAGS if FLAGS[k].present})
    # Imported here: the classifier is its own part of the adaptation layer.
    from keras_lm.adaptation.classifier import ClassifierConfig, finetune_classifier

    config = ClassifierConfig.from_recipe(FLAGS.recipe, **given)
    if not config.data:
        raise UsageError("--data: --head=classifier needs a labelled file (.csv, .tsv or "
                         ".jsonl with --text_key and --label_key), got none")
    finetune_classifier(config)


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__, lambda a: flag_of(a, FIELDS))

