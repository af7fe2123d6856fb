"""A finished run directory as one object: its kind, model, tokenizer, settings and what it can do.

Every command that reads a run (`eval`, `export`, `generate`, `classify`,
`explain`, `serve`, `prune`) is a few flags mapped onto `Run`; the checks of
what a kind of run can do live here, so a Python caller gets the same ones.

The kinds, from the run's `config.json` (what it was trained on):

- `text`: a language model trained (or fine-tuned) on text files;
- `pairs`: a language model fine-tuned on prompt -> response pairs;
- `classifier`: a text classifier (`keras-lm finetune --head=classifier`);
- `task`: a model trained on a synthetic task (`keras-lm train --task=...`).

Where its weights came from is a separate field (`source`: a pretrained
preset, for an imported run), not a kind.

Example:
>>> import os, tempfile
>>> from keras_lm.models import TransformerLM
>>> from keras_lm.tokenizers import ByteTokenizer
>>> path = tempfile.mkdtemp()
>>> TransformerLM.from_preset("tiny", vocabulary_size=259, pad_id=256).save(
...     os.path.join(path, "model.keras"))
>>> ByteTokenizer().save(os.path.join(path, "tokenizer.json"))
>>> run = Run(path)
>>> run.kind, len(run.generate("def ", max_new_tokens=4)[0]) <= 4
('text', True)
>>> run.classify(["x"])
Traceback (most recent call last):
...
keras_lm.errors.UsageError: model_dir: ... is a language model trained on text; classify needs a classifier run (keras-lm finetune --head=classifier)
"""

import functools
import json
import logging
import os

from keras_lm.data import resolve_files  # not `data`: evaluate() has an argument of that name
from keras_lm.adaptation.classifier_run import (
    classify_texts,
    evaluate_run,
    run_training_texts,
    run_validation_rows,
)
from keras_lm.errors import UsageError
from keras_lm.export.bundle import FORMATS, export
from keras_lm.export.classifier_export import export_classifier
from keras_lm.generation import generate
from keras_lm.interpret import explain
from keras_lm.model_dir import (
    CONFIG_FILE,
    MODEL_FILE,
    is_pairs_run,
    load,
    pair_file_examples,
    run_files,
    run_pair_examples,
    run_validation,
)
from keras_lm.models import TextClassifier
from keras_lm.prompt_template import PromptTemplate
from keras_lm.prune.run import prune_run
from keras_lm.scoring import evaluate_files, evaluate_pairs

logger = logging.getLogger("keras_lm")

KINDS = ("text", "pairs", "classifier", "task")
KIND_NAMES = {"text": "language model trained on text",
              "pairs": "language model fine-tuned on prompt -> response pairs",
              "classifier": "classifier", "task": "model trained on a synthetic task"}
# The keys of labelled rows and of pairs, by the kind of run that reads them.
CLASSIFIER_KEYS = ("text_key", "label_key")
PAIR_KEYS = ("prompt_key", "response_key")
# Classifier exports are checked on at most this many validation texts.
CLASSIFIER_CHECK_TEXTS = 64


def kind_of(config):
    """A run's kind from its `config.json` dict (see the module docstring).

    Example:
    >>> kind_of({"head": "classifier"}), kind_of({"task": "mqar"}), kind_of({})
    ('classifier', 'task', 'text')
    """
    if config.get("head") == "classifier":
        return "classifier"
    if config.get("task"):
        return "task"
    if is_pairs_run(config):
        return "pairs"
    return "text"


class Run:
    """A run directory (`keras-lm train`, `finetune`, `prune` or `import` output).

    `path` must hold `model.keras` and `tokenizer.json`; the model loads on
    first use (`run.model`). Errors name `argument` (the command line shows
    its flag).
    """

    def __init__(self, path, argument="model_dir"):
        self.path = os.fspath(path)
        self.argument = argument
        if not os.path.isdir(self.path):
            raise UsageError(f"{argument}: {self.path!r} is not a run directory",
                             argument=argument)
        if not os.path.isfile(os.path.join(self.path, MODEL_FILE)):
            raise UsageError(f"{argument}: no {MODEL_FILE} in {self.path!r} (train a model "
                             "first)", argument=argument)
        config_path = os.path.join(self.path, CONFIG_FILE)
        self.config = {}
        if os.path.isfile(config_path):
            with open(config_path, encoding="utf-8") as f:
                self.config = json.load(f)

    @functools.cached_property
    def model(self):
        """The Keras model, its `tokenizer` and `run_config` attached (`keras_lm.load`)."""
        return load(self.path, argument=self.argument)

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @functools.cached_property
    def kind(self):
        """`text`, `pairs`, `classifier` or `task`."""
        if not self.config:  # a bare model.keras + tokenizer.json: the model says
            return "classifier" if isinstance(self.model, TextClassifier) else "text"
        return kind_of(self.config)

    @property
    def source(self):
        """Where the weights came from: a pretrained preset for an imported run, else None."""
        return self.config.get("source")

    def require(self, kinds, what):
        """Raises `UsageError` unless the run is one of `kinds`; `what` names the action."""
        if self.kind not in kinds:
            wanted = " or ".join(f"a {KIND_NAMES[k]}" if k != "classifier"
                                 else "a classifier run (keras-lm finetune --head=classifier)"
                                 for k in kinds)
            raise UsageError(f"{self.argument}: {self.path!r} is a {KIND_NAMES[self.kind]}; "
                             f"{what} needs {wanted}", argument=self.argument)

    # --- generating and classifying -----------------------------------------------

    def prompt_template(self, raw=False):
        """The run's prompt template (a fine-tuned run's; none for one trained from scratch)."""
        return PromptTemplate() if raw else PromptTemplate.from_run_config(self.config)

    def generate(self, prompts, max_new_tokens=100, raw=False, **options):
        """Texts continuing `prompts` (a string or a list), the run's template applied.

        `options` are `keras_lm.generation.generate`'s (sampler, seed, stop, ...).
        """
        self.require(("text", "pairs", "task"), "generate")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        template = self.prompt_template(raw)
        return generate(self.model, self.tokenizer, [template.apply(p) for p in prompts],
                        max_new_tokens, **options)

    def classify(self, texts):
        """`[{"label": ..., "probabilities": {label: p}}]`, one per text."""
        self.require(("classifier",), "classify")
        return classify_texts(self.model, list(texts), self.tokenizer)

    def explain(self, prompt, target=None, raw=False, **options):
        """Per-token attributions of `prompt` (`keras_lm.interpret.explain`; its `options`).

        A language model reads the prompt through the run's prompt template
        (unless `raw`) and explains `target` (default: its greedy next
        token); a classifier explains a label (`label=...`, default: its
        prediction). A task run has no text to explain.
        """
        self.require(("text", "pairs", "classifier"), "explain")
        if self.kind != "classifier" and prompt:
            prompt = self.prompt_template(raw).apply(prompt)
        return explain(self.model, prompt, target, tokenizer=self.tokenizer, **options)

    # --- evaluating -----------------------------------------------------------------

    def evaluate(self, files=None, data=None, batch_size=32, text_key=None, label_key=None,
                 prompt_key=None, response_key=None):
        """The run's held-out figures as a dict, by its kind.

        Text: loss, perplexity and bits per byte on `files` (default: the
        run's own validation files). Pairs: the response tokens' figures on
        `data` (pairs) or its own validation pairs, or on `files` as text.
        Classifier: accuracy, macro-F1 and per-class figures on `data`
        (labelled rows) or its own validation rows (also writes
        `confusion_matrix.png`).
        """
        if batch_size <= 0:
            raise UsageError(f"batch_size must be > 0, got {batch_size}", argument="batch_size")
        keys = dict(text_key=text_key, label_key=label_key, prompt_key=prompt_key,
                    response_key=response_key)
        self._check_evaluate_arguments(files, data, keys)
        if self.kind == "classifier":
            return evaluate_run(self.model, self.tokenizer, self.config, self.path, data,
                                text_key, label_key)
        if self.kind == "pairs" and not files:
            model, tokenizer = self.model, self.tokenizer
            if data:
                examples = pair_file_examples(data, self.config, tokenizer,
                                              model.sequence_length, prompt_key, response_key)
                where = os.path.abspath(data)
            else:
                examples = run_validation(self.config, tokenizer, model.sequence_length)
                where = "validation pairs"
            return {**evaluate_pairs(model, examples, batch_size, tokenizer.pad_id),
                    "data": where}
        paths = resolve_files(files, "files") if files else run_files(self.config)[1]
        result = evaluate_files(self.model, self.tokenizer, paths, batch_size=batch_size)
        return {**result, "files": len(paths)}

    def _check_evaluate_arguments(self, files, data, keys):
        """`data` and its keys mean what the run's kind reads; the rest is an error."""
        wrong = {"classifier": PAIR_KEYS, "pairs": CLASSIFIER_KEYS,
                 "text": CLASSIFIER_KEYS + PAIR_KEYS, "task": CLASSIFIER_KEYS + PAIR_KEYS}
        for name in wrong[self.kind]:
            if keys[name] is not None:
                what = "classifier runs" if name in CLASSIFIER_KEYS else "pair runs"
                raise UsageError(f"{name}={keys[name]}: only used with data on {what}; "
                                 f"{self.path!r} is a {KIND_NAMES[self.kind]}", argument=name)
        if self.kind == "classifier" and files:
            raise UsageError("files: a classifier run scores labelled rows: pass data",
                             argument="files")
        if self.kind == "pairs" and files and data:
            raise UsageError(f"data={data}: give pairs (data) or text (files), not both",
                             argument="data")
        if self.kind in ("text", "task") and data:
            raise UsageError(f"data={data}: labelled rows are for classifier runs and pairs "
                             "for runs fine-tuned on pairs; score this language model on text "
                             "with files", argument="data")

    # --- pruning --------------------------------------------------------------------

    def prune(self, output_dir, sparsity, recover_steps=0, **options):
        """Prunes the run into a new run directory `output_dir`; returns its metrics.

        `keras_lm.prune.run.prune_run` (its `options`: importance_batches,
        batch_size, learning_rate, seed, verbose); the importance is measured
        on the run's own training text, so a text run only.
        """
        self.require(("text",), "prune (it measures importance on the run's training text)")
        return prune_run(self.path, output_dir, sparsity, recover_steps, **options)

    # --- exporting ------------------------------------------------------------------

    def export(self, formats=FORMATS, quantize=("none", "fp16", "dynamic_int8"),
               prefill_lengths=None, data_files=None, verify=False, **options):
        """Writes the run's SavedModel and LiteRT files into its directory; returns the report.

        A language model: `keras_lm.export.bundle.export`, checked on the
        run's own validation text (or pairs), int8 calibrated on its training
        text (or `data_files`). A classifier: `export_classifier`, checked on
        its validation rows, int8 calibrated on its training rows. A task
        run has no text to export. `verify=True` raises
        `keras_lm.export.bundle.VerificationError` on a missed bound.
        """
        self.require(("text", "pairs", "classifier"), "export (a synthetic-task run has an id "
                     "tokenizer, no text for a server or a phone to read)")
        if self.kind == "classifier":
            return self._export_classifier(formats, quantize, prefill_lengths, data_files,
                                           verify)
        needs_calibration = bool({"tflite", "litertlm"} & set(formats)) and "int8" in quantize
        calibration, validation = self._export_data(data_files, needs_calibration)
        if prefill_lengths is not None:
            options["prefill_lengths"] = prefill_lengths
        return export(self.model, self.tokenizer, self.path, formats=formats, quantize=quantize,
                      calibration_files=calibration, validation_files=validation,
                      verify=verify, **options)

    def _export_classifier(self, formats, quantize, prefill_lengths, data_files, verify):
        if "litertlm" in formats:
            raise UsageError("formats: litertlm is for language models; a classifier run "
                             "exports saved_model and tflite", argument="formats")
        for name, value in (("data_files", data_files), ("prefill_lengths", prefill_lengths)):
            if value is not None:
                raise UsageError(f"{name}: not used for a classifier run (it is checked on its "
                                 "own validation rows)", argument=name)
        rows = run_validation_rows(self.path, self.config)
        texts = [row.text for row in rows][:CLASSIFIER_CHECK_TEXTS]
        calibration, source = None, None
        if "int8" in quantize:
            # The training texts; the validation texts if the run's data is not
            # readable here (the metadata says which).
            calibration = run_training_texts(self.config)
            if calibration:
                source = f"training rows of {self.config['data']}"
            else:
                calibration = texts
                source = "validation rows (the training data is not readable)"
        return export_classifier(self.model, self.tokenizer, self.path, formats=formats,
                                 quantize=quantize, texts=texts, verify=verify,
                                 calibration_texts=calibration, calibration_source=source)

    def _export_data(self, data_files, needs_calibration):
        """(calibration, validation): `data_files`, else the run's own files (or pairs)."""
        if data_files:
            return data_files, data_files
        if self.kind == "pairs":  # its own pairs, as trained: never another text
            return run_pair_examples(self.config, self.tokenizer, self.model.sequence_length)
        try:
            return run_files(self.config)
        except UsageError as error:
            if needs_calibration:
                raise UsageError(
                    f"quantize=int8 needs training text to calibrate on: the run's files are "
                    f"not readable here ({error}); pass data_files", argument="quantize") from None
            logger.warning("no validation text (%s): perplexity figures skipped", error)
            return None, None
