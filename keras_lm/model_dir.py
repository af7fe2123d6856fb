"""Reading a trained model's output directory: its model (`load`, the one loader, which lives
with the models so that the classifier can load its base), its files and pairs."""

from keras_lm import data
from keras_lm.errors import UsageError
from keras_lm.models.loading import CONFIG_FILE, MODEL_FILE, load
from keras_lm.prompt_template import PromptTemplate

__all__ = ["CONFIG_FILE", "MODEL_FILE", "load", "load_model_dir", "run_files", "run_pairs",
           "run_validation"]


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
