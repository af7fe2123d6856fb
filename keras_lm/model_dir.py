"""Reading a trained model's output directory."""

import json
import os

import keras

import keras_lm.models  # noqa: F401  (registers the classes for loading)
from keras_lm import data
from keras_lm.errors import UsageError
from keras_lm.tokenizers import TOKENIZER_FILE, load_tokenizer

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"


def load_model_dir(model_dir):
    """Loads `(model, tokenizer, config)` from a `keras-lm train` directory.

    Example (after `keras-lm train`):
        model, tokenizer, config = load_model_dir("saved_models/quickstart")
    """
    model_path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise UsageError(f"model_dir: no {MODEL_FILE} in {model_dir!r} (train a model first)", argument="model_dir")
    tokenizer = load_tokenizer(os.path.join(model_dir, TOKENIZER_FILE))
    try:
        model = keras.models.load_model(model_path)
    except Exception as error:  # noqa: BLE001  (any failure means a bad file)
        raise UsageError(f"model_dir: cannot load {model_path!r}: {error}", argument="model_dir") from None
    # So that `model.generate("text")` needs no tokenizer argument.
    model.tokenizer = tokenizer
    config = {}
    config_path = os.path.join(model_dir, CONFIG_FILE)
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    return model, tokenizer, config


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
    fields = ("corpus", "train_files", "val_files", "validation_fraction")
    return data.run_files(**{k: config[k] for k in fields if k in config})
