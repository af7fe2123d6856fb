"""The one loader: a run directory (or a `.keras` file) as a model with its tokenizer and settings.

Here, in the models layer, so that `TextClassifier.from_lm` reads its base
the way every command does; `keras_lm.load` and `keras_lm.model_dir.load`
are this function.
"""

import json
import os

import keras

from keras_lm.errors import UsageError
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
