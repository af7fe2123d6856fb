"""Reading a trained model's output directory."""

import json
import os

import keras

import keras_lm.models  # noqa: F401  (registers the classes for loading)
from keras_lm import data
from keras_lm.errors import UsageError
from keras_lm.prompt_template import PromptTemplate
from keras_lm.tokenizers import TOKENIZER_FILE, load_tokenizer

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"


def load(path, argument="path"):
    """A trained model with its tokenizer and run settings, ready to `generate`.

    `path` is a `keras-lm train` output directory, or a `.keras` file with
    `tokenizer.json` beside it or in its parent directory (as for
    `checkpoints/best.keras`). The model comes back with `model.tokenizer`
    and `model.run_config` (the run's `config.json` as a dict, `{}` where
    there is none) attached. A synthetic-task run loads too, with its id
    tokenizer. Errors name `argument`.

    Example:
    >>> import os, tempfile, keras_lm
    >>> from keras_lm.models import TransformerLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> run = tempfile.mkdtemp()
    >>> TransformerLM.from_preset("tiny", vocabulary_size=259).save(os.path.join(run, "model.keras"))
    >>> ByteTokenizer().save(os.path.join(run, "tokenizer.json"))
    >>> model = keras_lm.load(run)
    >>> len(model.generate("def ", 5)) <= 5, model.run_config
    (True, {})
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        model_path = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(model_path):
            raise UsageError(f"{argument}: no {MODEL_FILE} in {path!r} (train a model first)",
                             argument=argument)
        run_dir = path
    elif os.path.isfile(path) and path.endswith(".keras"):
        model_path = path
        here = os.path.dirname(os.path.abspath(path))
        run_dir = next((d for d in (here, os.path.dirname(here))
                        if os.path.isfile(os.path.join(d, TOKENIZER_FILE))), None)
        if run_dir is None:
            raise UsageError(f"{argument}: no {TOKENIZER_FILE} beside {path!r} or in its parent "
                             "directory", argument=argument)
    else:
        raise UsageError(f"{argument}: {path!r} is neither a run directory nor a .keras file",
                         argument=argument)
    tokenizer_path = os.path.join(run_dir, TOKENIZER_FILE)
    if not os.path.isfile(tokenizer_path):
        raise UsageError(f"{argument}: no {TOKENIZER_FILE} in {run_dir!r}", argument=argument)
    tokenizer = load_tokenizer(tokenizer_path)
    try:
        model = keras.models.load_model(model_path)
    except Exception as error:  # noqa: BLE001  (any failure means a bad file)
        raise UsageError(f"{argument}: cannot load {model_path!r}: {error}",
                         argument=argument) from None
    # So that `model.generate("text")` needs no tokenizer argument.
    model.tokenizer = tokenizer
    model.run_config = {}
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            model.run_config = json.load(f)
    return model


def load_model_dir(model_dir):
    """`(model, tokenizer, config)` of a `keras-lm train` directory (see `load`).

    Example (after `keras-lm train`):
        model, tokenizer, config = load_model_dir("saved_models/quickstart")
    """
    model = load(model_dir, argument="model_dir")
    return model, model.tokenizer, model.run_config


def run_files(config):
    """The `(train, validation)` file lists of a finished run, from its `config.json` dict.

    Resolved the way training resolved them (same corpus, globs and split),
    so `eval` and `export` find the run's own validation text.
    """
    if config.get("task"):
        raise UsageError(
            f"model_dir: this run trained on the synthetic task {config['task']!r}, not on "
            "text files; score it with `keras-lm probe` (or pass text files)",
            argument="model_dir")
    if is_pairs_run(config):
        raise UsageError(
            "model_dir: this run fine-tuned on prompt -> response pairs, not text files "
            "(its validation data: `run_pairs`); pass text files", argument="model_dir")
    fields = ("corpus", "train_files", "val_files", "validation_fraction", "validation_split",
              "min_validation_bytes")
    settings = {k: config[k] for k in fields if k in config}
    # Runs recorded before the split inside files existed split by file.
    settings.setdefault("validation_split", "by_file")
    return data.run_files(**settings)


def is_pairs_run(config):
    """Whether a run's config.json is a fine-tuning on prompt -> response pairs."""
    return config.get("finetune_kind") == "pairs"


def run_pairs(config):
    """The `(train, validation)` pairs of a pair run, from its `config.json` dict.

    Read and split the way fine-tuning did (the same files, keys, rule and
    built-in pair set), so `eval` and `export` score exactly the run's
    validation rows. See `keras_lm.data.run_pairs`.
    """
    if not is_pairs_run(config):
        raise UsageError("model_dir: this run did not fine-tune on prompt -> response pairs",
                         argument="model_dir")
    fields = ("data", "val_data", "prompt_key", "response_key", "validation_fraction",
              "pairs_corpus", "pairs_corpus_max_bytes")
    return data.run_pairs(**{k: config.get(k) for k in fields if config.get(k) is not None})


def run_pair_examples(config, tokenizer, sequence_length):
    """A pair run's `(train, validation)` pairs encoded as trained (`keras_lm.data.EncodedPairs`).

    Through the run's prompt template, prompts cut to `sequence_length` as
    in training.
    """
    template = PromptTemplate.from_run_config(config)
    return tuple(data.encode_pairs(pairs, tokenizer, template, sequence_length)
                 for pairs in run_pairs(config))


def pair_file_examples(path, config, tokenizer, sequence_length, prompt_key=None,
                       response_key=None):
    """The pairs of file `path` encoded as run `config` trained its own (`EncodedPairs`).

    Read with the run's keys unless others are given, through the run's
    prompt template, prompts cut to `sequence_length` as in training; a
    mistake in the file is a `UsageError` naming `data` (or the key).
    """
    pairs = data.read_pairs(path, prompt_key or config.get("prompt_key") or "prompt",
                            response_key or config.get("response_key") or "response",
                            argument="data")
    return data.encode_pairs(pairs, tokenizer, PromptTemplate.from_run_config(config),
                             sequence_length, argument="data")


def run_validation(config, tokenizer, sequence_length):
    """A run's own validation data: its validation files, or its encoded validation pairs."""
    if not is_pairs_run(config):
        return run_files(config)[1]
    return run_pair_examples(config, tokenizer, sequence_length)[1]
