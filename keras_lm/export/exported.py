"""Generating text from exported files: a `.tflite` bundle file or a SavedModel.

`load_exported(path)` opens either and gives one `generate` for both, so
`keras-lm generate --model=PATH` (and a Python user) checks an export the
way it will be served: LiteRT with the bundle's `tokenizer.json` and NumPy
sampling, or the SavedModel's `serving_default` / `sample` signatures.

Example (not run here: it needs exported files):

    exported = load_exported("saved_models/quickstart/tflite/model_fp16.tflite")
    exported.generate(["def "], max_new_tokens=40, temperature=0.8, seed=1)
"""

import json
import os
import random

import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.export.json_tokenizer import JsonTokenizer
from keras_lm.export.litert_runner import LiteRTRunner, generate_text
from keras_lm.export.saved_model import MODEL_ASSET, RAW_SIGNATURE
from keras_lm.generation.generate import cut_at_stop
from keras_lm.prompt_template import PromptTemplate
from keras_lm.tokenizers import TOKENIZER_FILE


def load_exported(path):
    """An `ExportedLiteRT` (a `.tflite` file) or `ExportedSavedModel` (a directory).

    Errors are UsageErrors naming `path` (`argument="path"`): a missing
    path, a corrupt file, a `.tflite` without `tokenizer.json` beside it.
    """
    if not os.path.exists(path):
        raise UsageError(f"path: {path!r} does not exist", argument="path")
    if os.path.isfile(os.path.join(path, "model.keras")):
        raise UsageError(
            f"path: {path!r} is a training output directory (a model_dir); pass its "
            "saved_model/ or a tflite/*.tflite file",
            argument="path",
        )
    if os.path.isdir(path):
        return ExportedSavedModel(path)
    return ExportedLiteRT(path)


class ExportedLiteRT:
    """A `.tflite` file of an export bundle, run by LiteRT (batch 1, no beam)."""

    def __init__(self, path):
        tokenizer_path = os.path.join(os.path.dirname(os.path.abspath(path)), TOKENIZER_FILE)
        if not os.path.isfile(tokenizer_path):
            raise UsageError(
                f"path: no {TOKENIZER_FILE} beside {path!r} (export writes the two together)",
                argument="path",
            )
        try:
            self.runner = LiteRTRunner(path)
        except Exception as error:  # noqa: BLE001  (LiteRT raises ValueError/RuntimeError)
            raise UsageError(
                f"path: cannot load {path!r} as a LiteRT model ({error})", argument="path"
            ) from None
        try:
            self.tokenizer = JsonTokenizer.load(tokenizer_path)
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(
                f"path: {tokenizer_path!r} is corrupt ({error})", argument="path"
            ) from None
        self.sequence_length = self.runner.max_length

    def prompt_length(self, prompt, raw=False):
        """Tokens of `prompt` with `<bos>` (through the prompt template unless `raw`)."""
        if not raw:
            prompt = PromptTemplate(self.tokenizer.prompt_template).apply(prompt)
        return 1 + len(self.tokenizer.encode(prompt))

    def generate(self, prompts, max_new_tokens, *, temperature=0.0, top_k=0, top_p=1.0,
                 seed=None, stop=(), raw=False):
        """One continuation per prompt; sampling in NumPy (seeded per prompt).

        Prompts go through the bundle's prompt template unless `raw`.
        """
        if not prompts:
            return []
        if not raw:
            prompts = PromptTemplate(self.tokenizer.prompt_template).apply(list(prompts))
        return [
            cut_at_stop(
                generate_text(
                    self.runner, self.tokenizer, prompt, max_new_tokens,
                    seed=None if seed is None else seed + i,
                    temperature=temperature, top_k=top_k, top_p=top_p,
                ),
                stop,
            )[0]
            for i, prompt in enumerate(prompts)
        ]


class ExportedSavedModel:
    """A SavedModel directory written by `export_saved_model`, run by TensorFlow."""

    def __init__(self, path):
        # Imported on use: it registers the ops of in-graph subword tokenizers,
        # which only loading a SavedModel needs.
        import tensorflow_text  # noqa: F401

        try:
            self.loaded = tf.saved_model.load(path)
            self.signatures = dict(self.loaded.signatures)
        except Exception as error:  # noqa: BLE001  (OSError, parse errors, ...)
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UsageError(
                f"path: cannot load {path!r} as a SavedModel ({message})", argument="path"
            ) from None
        missing = {"serving_default", "sample", "prefill"} - set(self.signatures)
        if missing:
            raise UsageError(
                f"path: {path!r} is not a keras_lm SavedModel (no {', '.join(sorted(missing))} "
                "signature)",
                argument="path",
            )
        # The cache length of the `prefill` signature's state is the sequence length.
        state = [
            spec for name, spec in self.signatures["prefill"].structured_input_signature[1].items()
            if name != "token_ids"
        ]
        # What export recorded first: an imported keras-hub model's cache is
        # (batch, length, heads, head_dim), keras_lm's (batch, heads, length, head_dim).
        self.sequence_length = _recorded_sequence_length(path)
        if self.sequence_length is None and len(state[0].shape) == 4:
            self.sequence_length = int(state[0].shape[2])
        self._encode = None

    def prompt_length(self, prompt, raw=False):
        """Tokens of `prompt` with `<bos>` (through the SavedModel's `logits` path: unknown)."""
        return 1 + len(prompt.encode("utf-8"))  # an upper bound for byte and char tokenizers

    def generate(self, prompts, max_new_tokens, *, temperature=0.0, top_k=0, top_p=1.0,
                 seed=None, stop=(), raw=False):
        """The `sample` signature (greedy when `temperature` is 0): one text per prompt.

        `sample` applies a fine-tuned model's prompt template in the graph;
        `raw` uses `sample_raw` instead (present only with a template).
        """
        name = RAW_SIGNATURE if raw and RAW_SIGNATURE in self.signatures else "sample"
        out = self.signatures[name](
            prompts=tf.constant(list(prompts)),
            max_new_tokens=tf.constant(max_new_tokens, tf.int32),
            temperature=tf.constant(temperature, tf.float32),
            top_k=tf.constant(top_k, tf.int32),
            top_p=tf.constant(top_p, tf.float32),
            seed=tf.constant(random.randrange(2**31) if seed is None else seed, tf.int64),
        )["text"].numpy()
        return [cut_at_stop(t.decode("utf-8", "replace"), stop)[0] for t in out]


def _recorded_sequence_length(path):
    """The context `export` recorded beside the graph, else the run's config.json above it."""
    for candidate in (os.path.join(path, MODEL_ASSET),
                      os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")):
        try:
            with open(candidate, encoding="utf-8") as f:
                return int(json.load(f)["sequence_length"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None
