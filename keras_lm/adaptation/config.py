"""The settings of a fine-tuning run (`keras-lm finetune`), written beside it as config.json.

`FinetuneConfig` is a `TrainConfig` (the same optimizer, schedule, clock,
evaluation and TensorBoard settings, and the same flags for them) plus what
fine-tuning adds: the base run, the data (text files, or prompt -> response
pairs), the prompt template and LoRA. The model, its context and its
tokenizer are the base's: `resolve_from_base` fills those fields in from
the base, so config.json reads like a training run's and every reader of
one (`eval`, `export`, `probe`) finds what it expects.
"""

import dataclasses
import os

from keras_lm.adaptation.lora import TARGETS
from keras_lm.adaptation.recipes import FINETUNE_RECIPES, finetune_recipe_defaults, recipe_head
from keras_lm.data import PAIR_CORPORA
from keras_lm.data.pairs import VALIDATION_FRACTION
from keras_lm.errors import UsageError
from keras_lm.prompt_template import DEFAULT_TEMPLATE, PromptTemplate
from keras_lm.training.config import TrainConfig, setting

# The tokenizer settings of `keras-lm train`: a fine-tuning run keeps the base's.
TOKENIZER_SETTINGS = ("tokenizer", "vocabulary_size", "normalize", "sentencepiece_model_type")
# Continued training on text holds out this share, as `keras-lm train` does.
TEXT_VALIDATION_FRACTION = 0.05
# Peak learning rates unless --learning_rate is given (see docs/adaptation.md).
FULL_LEARNING_RATE = 5e-4
LORA_LEARNING_RATE = 2e-3


@dataclasses.dataclass
class FinetuneConfig(TrainConfig):
    """Every setting of a fine-tuning run; field names are the `keras-lm finetune` flags
    (but `base_dir` is `--model_dir`).

    Example:
    >>> config = FinetuneConfig(base_dir="saved_models/quickstart", data="pairs.jsonl",
    ...                         output_dir="saved_models/pairs")
    >>> config.check_settings()
    >>> config.kind, config.resolved_template().template
    ('pairs', '{prompt}\\n')
    """

    recipe: str = setting(None, "Named fine-tuning configuration: "
                          f"{', '.join(FINETUNE_RECIPES)}.", choices=tuple(FINETUNE_RECIPES))
    base_dir: str = setting("saved_models/quickstart", "The trained run to start from "
                            "(a `keras-lm train` or `finetune` output directory); never "
                            "changed.", flag="model_dir")
    data: str = setting(None, "Prompt -> response pairs: a .jsonl, .csv or .tsv file.")
    val_data: str = setting(None, "Validation pairs (default: 10% of --data's rows, chosen "
                            "by a hash of the row).")
    prompt_key: str = setting("prompt", "The prompt's field in --data.")
    response_key: str = setting("response", "The response's field in --data.")
    template: str = setting(
        None, "Prompt template: a format string with one {prompt} field (default "
        f"{DEFAULT_TEMPLATE!r} for pairs; the base's for text).")
    pairs_corpus: str = setting(None, "A built-in pair set (set by a recipe).", flag=False,
                                choices=PAIR_CORPORA)
    pairs_corpus_max_bytes: int = setting(None, "Longest built-in pair, in bytes.", flag=False)
    lora_rank: int = setting(None, "Train LoRA adapters of this rank instead of every weight.")
    lora_alpha: float = setting(None, "LoRA scale numerator: updates are scaled by "
                                "alpha / rank (default: alpha = rank).")
    lora_targets: str = setting(",".join(TARGETS), "Dense layers that get LoRA, some of "
                                f"{', '.join(TARGETS)}.")
    save_adapters: bool = setting(False, "Also write the LoRA adapters alone (adapters.npz), "
                                  "loadable onto the same base with --adapters.")
    adapters: str = setting(None, "Start from these LoRA adapters (an adapters.npz of the same "
                            "base) and train them further.")
    # Defaults of their own where fine-tuning differs from training.
    learning_rate: float = setting(
        None, f"Peak learning rate (default: {FULL_LEARNING_RATE:g}, with LoRA "
        f"{LORA_LEARNING_RATE:g}).")
    steps: int = setting(300, "Training steps.")
    eval_interval: int = setting(100, "Steps between validations, samples, backups.")
    batch_size: int = setting(16, "Sequences (pairs) per step.")
    validation_fraction: float = setting(
        None, f"Share held out for validation: of the pairs' rows ({VALIDATION_FRACTION:g}) or "
        f"of the text files ({TEXT_VALIDATION_FRACTION:g}).")
    # The base's: filled in by `resolve_from_base`; given, they are an error.
    tokenizer: str = setting(None, "The base's tokenizer (not a setting here).")
    normalize: str = setting(None, "The base's normalisation (not a setting here).")
    sentencepiece_model_type: str = setting(None, "The base's (not a setting here).")

    @classmethod
    def from_recipe(cls, name=None, **given):
        """The config of fine-tuning recipe `name` (None: no recipe) with `given` on top,
        by `TrainConfig.from_recipe`'s rules; `keras-lm finetune` is exactly this call.

        Example:
        >>> config = FinetuneConfig.from_recipe("docstring_to_code", steps=20,
        ...                                     output_dir="saved_models/docs")
        >>> config.pairs_corpus, config.steps, config.train_minutes
        ('docstring_to_code', 20, None)
        """
        if name is None:
            return cls(**{key: value for key, value in given.items() if key != "recipe"})
        return super().from_recipe(name, **given)

    @staticmethod
    def recipe_settings(name):
        head = recipe_head(name)
        if head != "lm":
            raise UsageError(f"recipe: {name!r} trains a {head} head, not a language model; "
                             "fine-tune it as a classifier (head=classifier)", argument="recipe")
        return finetune_recipe_defaults(name)

    @property
    def kind(self):
        """`pairs` (prompt -> response) or `text` (continued training)."""
        return "text" if self.train_files else "pairs"

    def check_settings(self):
        """The checks that need no base model; raises UsageError naming the setting."""
        self.check_finite()
        for name in TOKENIZER_SETTINGS:
            if getattr(self, name) is not None:
                raise UsageError(
                    f"{name}={getattr(self, name)}: fine-tuning uses the base model's "
                    "tokenizer (its tokenizer.json); leave out the tokenizer settings",
                    argument=name)
        sources = [name for name in ("data", "train_files", "pairs_corpus")
                   if getattr(self, name)]
        if len(sources) != 1:
            raise UsageError(
                "data: give prompt -> response pairs (data=pairs.jsonl), text for continued "
                "training (train_files=...) or a recipe, exactly one; got "
                f"{', '.join(sources) or 'none'}", argument="data")
        misplaced = ("val_data",) if self.kind == "text" else ("val_files",)
        for name in misplaced:
            if getattr(self, name):
                other = "data" if name == "val_data" else "train_files"
                raise UsageError(f"{name}={getattr(self, name)}: only used with {other}",
                                 argument=name)
        if self.kind == "text":
            for name in ("prompt_key", "response_key"):
                if getattr(self, name) != _default(name):
                    raise UsageError(f"{name}={getattr(self, name)}: only used with data "
                                     "(pairs)", argument=name)
        self.resolved_template()
        if not self.uses_lora:
            for name in ("lora_alpha", "save_adapters"):
                if getattr(self, name):
                    raise UsageError(f"{name}={getattr(self, name)}: only used with lora_rank "
                                     "(or adapters)", argument=name)
            if self.lora_targets != _default("lora_targets"):
                raise UsageError(f"lora_targets={self.lora_targets}: only used with lora_rank",
                                 argument="lora_targets")
        if self.lora_rank is not None and (isinstance(self.lora_rank, bool)
                                           or not isinstance(self.lora_rank, int)
                                           or self.lora_rank <= 0):
            raise UsageError(f"lora_rank must be an integer > 0, got {self.lora_rank}",
                             argument="lora_rank")
        if self.lora_alpha is not None and self.lora_alpha <= 0:
            raise UsageError(f"lora_alpha must be > 0, got {self.lora_alpha}",
                             argument="lora_alpha")
        if self.adapters:
            for name in ("lora_rank", "lora_alpha"):
                if getattr(self, name) is not None:
                    raise UsageError(f"{name}={getattr(self, name)}: the adapters file sets "
                                     "the LoRA settings; give adapters or LoRA settings, not "
                                     "both", argument=name)
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            raise UsageError(f"validation_fraction must be in (0, 1), got "
                             f"{self.validation_fraction}", argument="validation_fraction")
        if self.output_dir is None:
            raise UsageError("output_dir: give the new run's directory (fine-tuning never "
                             "writes into its base)", argument="output_dir")
        if _same_path(self.output_dir, self.base_dir):
            raise UsageError(f"output_dir={self.output_dir}: is the base model's directory; "
                             "fine-tuning never changes its base, choose another",
                             argument="output_dir")

    @property
    def uses_lora(self):
        return self.lora_rank is not None or bool(self.adapters)

    def resolved_template(self, base_config=None):
        """The run's `PromptTemplate`: `template`, else the default (pairs) or the base's (text)."""
        if self.template is not None:
            return PromptTemplate(self.template, argument="template")
        if self.kind == "pairs" and (base_config or {}).get("source"):
            # An imported model: its family's chat format (keras_lm.pretrained.chat_templates).
            return PromptTemplate.from_run_config(base_config)
        if self.kind == "pairs":
            return PromptTemplate(DEFAULT_TEMPLATE)
        return PromptTemplate.from_run_config(base_config or {})

    def resolve_from_base(self, model, tokenizer, base_config):
        """Fills in the base's model, context and tokenizer, and the defaults that
        depend on the run's kind; then `TrainConfig.validate`."""
        if tokenizer.kind not in ("byte", "char", "wordpiece", "sentencepiece", "keras_hub"):
            raise UsageError(f"base_dir={self.base_dir}: a synthetic-task run (its tokenizer "
                             f"is {tokenizer.kind!r}); fine-tune a text model",
                             argument="base_dir")
        self.model = getattr(model, "family", self.model)
        self.preset = base_config.get("preset", self.preset)
        self.model_args = dict(base_config.get("model_args") or {})
        self.sequence_length = int(model.sequence_length)
        self.tokenizer = tokenizer.kind
        self.normalize = tokenizer.normalize
        self.sentencepiece_model_type = base_config.get("sentencepiece_model_type", "unigram")
        self.vocabulary_size = base_config.get("vocabulary_size")
        self.dropout = None
        self.precision = "float32"
        # Absolute: eval and export read them again from any directory.
        for name in ("data", "val_data", "adapters"):
            if getattr(self, name):
                setattr(self, name, os.path.abspath(getattr(self, name)))
        if self.validation_fraction is None:
            self.validation_fraction = (VALIDATION_FRACTION if self.kind == "pairs"
                                        else TEXT_VALIDATION_FRACTION)
        if self.learning_rate is None:
            self.learning_rate = LORA_LEARNING_RATE if self.uses_lora else FULL_LEARNING_RATE
        if self.sample_tokens is not None and self.sample_tokens >= self.sequence_length:
            self.sample_tokens = self.sequence_length - 1
        self.validate()

    def _validate_model(self):
        pass  # the base's model, as it was trained

    def _validate_text(self):
        # An imported keras-hub model brings its own tokenizer ("keras_hub"), which is no
        # choice for a new run: its other text settings are checked as a byte run's.
        kind = self.tokenizer
        self.tokenizer = "byte" if kind == "keras_hub" else kind
        try:
            super()._validate_text()
        finally:
            self.tokenizer = kind

    def to_dict(self):
        return dataclasses.asdict(self)


def _default(name):
    return {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}[name]


def _same_path(a, b):
    return os.path.realpath(os.path.abspath(a)) == os.path.realpath(os.path.abspath(b))
