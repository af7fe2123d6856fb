"""The settings of a classifier run (`keras-lm finetune --head=classifier`), written as config.json.

`ClassifierConfig` is a `FinetuneConfig` (the base, the data, LoRA, the
optimizer, the run directory's settings) with what a classifier adds: the
text's and the label's keys, the pooling, the longest input and the
dropout on the pooled features, and defaults of its own (a smaller
learning rate and weight decay, a warm-up of 10%, five evaluations, a run
of four passes over the training rows). The fine-tuning settings that only
make sense for a language model (a prompt template, pair keys, text files,
adapter files, samples, the language model's TensorBoard views) are an
error when given.

`resolve_from_base` fills in the base's model and tokenizer and the input
length; `resolve_length` the steps, warm-up and evaluation interval once
the rows are counted. Then `TrainConfig.validate` checks the rest, as for
every run.

Example:
>>> config = ClassifierConfig(base_dir="saved_models/quickstart", data="labels.csv",
...                           output_dir="saved_models/labels", pooling="mean")
>>> config.check_settings()
>>> config.resolve_length(train_rows=400)
>>> config.steps, config.warmup_steps, config.eval_interval
(50, 5, 10)
"""

import dataclasses
import math
import numbers

from keras_lm.adaptation.config import FinetuneConfig
from keras_lm.adaptation.labeled_data import describe_data
from keras_lm.adaptation.recipes import finetune_recipe_defaults, recipe_head
from keras_lm.data.rows import VALIDATION_FRACTION
from keras_lm.errors import UsageError
from keras_lm.models import LanguageModel
from keras_lm.models.text_classifier import POOLINGS
from keras_lm.training.config import setting

HEAD = "classifier"
# Without `steps`: this many passes over the training rows (at least MIN_STEPS steps).
DEFAULT_EPOCHS = 4
MIN_STEPS = 20
# Evaluations on the validation rows during a run (without `eval_interval`).
EVALUATIONS = 5
# Fine-tuning settings a classifier does not use, with the value that means "not given".
LANGUAGE_MODEL_ONLY = (("template", None), ("prompt_key", "prompt"),
                       ("response_key", "response"), ("pairs_corpus", None),
                       ("pairs_corpus_max_bytes", None), ("train_files", None),
                       ("val_files", None), ("validation_fraction", None), ("adapters", None),
                       ("save_adapters", False), ("samples", False), ("sample_tokens", None),
                       ("attention_maps", False), ("position_loss", False),
                       ("embedding_projector", False))


@dataclasses.dataclass
class ClassifierConfig(FinetuneConfig):
    """Every setting of a classifier run; `finetune_classifier(config)` runs it.

    `data` (and `val_data`) may also be rows in Python: a list of dicts or
    `(text, label)` pairs, a function returning them, or the name of a
    built-in set (`classify_stdlib`); config.json records a path
    absolute, a built-in as `builtin:NAME`, and rows as None.
    """

    data: str = setting(None, "Labelled texts: a .jsonl, .csv or .tsv file with a text and a "
                        "label per row (or rows in Python, or a built-in set: classify_stdlib).")
    val_data: str = setting(None, "Validation rows (default: 10% of --data's rows, chosen by "
                            "a hash of the row).")
    text_key: str = setting("text", "The text's field in --data.")
    label_key: str = setting("label", "The label's field in --data.")
    pooling: str = setting("last", "The <eos> position's features (last) or their mean over "
                           "the text (mean).", choices=POOLINGS)
    max_length: int = setting(None, "The longest input in tokens (default: the base's "
                              "context); longer texts keep their beginning.")
    dropout: float = setting(0.1, "Dropout on the pooled features.")
    steps: int = setting(None, f"Training steps (default: {DEFAULT_EPOCHS} passes over the "
                         f"training rows, at least {MIN_STEPS}).")
    batch_size: int = setting(32, "Rows per step.")
    learning_rate: float = setting(3e-4, "Peak learning rate (AdamW, warm-up, cosine decay).")
    weight_decay: float = setting(0.01, "Decoupled weight decay.")
    warmup_steps: int = setting(None, "Linear warm-up steps (default: 10% of the steps).")
    eval_interval: int = setting(None, f"Steps between validations and backups (default: "
                                 f"{EVALUATIONS} in the run).")
    samples: bool = setting(False, "Not used by a classifier.")
    attention_maps: bool = setting(False, "Not used by a classifier.")
    position_loss: bool = setting(False, "Not used by a classifier.")
    embedding_projector: bool = setting(False, "Not used by a classifier.")

    @staticmethod
    def recipe_settings(name):
        """The settings of fine-tuning recipe `name`, which must train a classifier."""
        head = recipe_head(name)
        if head != HEAD:
            raise UsageError(f"recipe: {name!r} trains a {head} head, not a classifier; "
                             "fine-tune it with FinetuneConfig", argument="recipe")
        return finetune_recipe_defaults(name)

    def check_settings(self):
        """The checks that need no base model and no rows; raises UsageError naming the setting."""
        if self.data is None or (isinstance(self.data, (str, list, tuple)) and not self.data):
            raise UsageError("data: a classifier needs labelled texts (a .jsonl, .csv or .tsv "
                             f"file with {self.text_key!r} and {self.label_key!r}), got none",
                             argument="data")
        for name, unused in LANGUAGE_MODEL_ONLY:
            if getattr(self, name) != unused:
                raise UsageError(f"{name}={getattr(self, name)}: not used by a classifier "
                                 "(a language model's fine-tuning setting)", argument=name)
        if self.pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got "
                             f"{self.pooling!r}", argument="pooling")
        for name in ("steps", "batch_size", "max_length", "warmup_steps", "eval_interval"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, numbers.Integral)
                                      or value < (0 if name == "warmup_steps" else 1)):
                raise UsageError(f"{name} must be a positive integer, got {value!r}",
                                 argument=name)
        if self.max_length == 1:  # room for <bos> and one token of text at least
            raise UsageError("max_length must be at least 2, got 1", argument="max_length")
        if not self.learning_rate > 0:
            raise UsageError(f"learning_rate must be > 0, got {self.learning_rate}",
                             argument="learning_rate")
        super().check_settings()  # the tokenizer's settings, LoRA, the output directory

    def resolve_from_base(self, model, tokenizer, base_config):
        """Fills in the base's model and tokenizer settings and the input length."""
        if not isinstance(model, LanguageModel):
            raise UsageError(f"base_dir: {self.base_dir!r} holds a {type(model).__name__}, not "
                             "a language model (the base of a classifier is a `keras-lm "
                             "train` or `finetune --head=lm` run)", argument="base_dir")
        if tokenizer.kind not in ("byte", "char", "wordpiece", "sentencepiece", "keras_hub"):
            raise UsageError(f"base_dir={self.base_dir}: a synthetic-task run (its tokenizer "
                             f"is {tokenizer.kind!r}); fine-tune a text model",
                             argument="base_dir")
        if self.max_length is not None and self.max_length > model.sequence_length:
            raise UsageError(f"max_length must be at most the base's context "
                             f"({model.sequence_length} tokens), got {self.max_length}",
                             argument="max_length")
        self.model = getattr(model, "family", self.model)
        self.preset = base_config.get("preset", self.preset)
        self.model_args = dict(base_config.get("model_args") or {})
        self.max_length = int(self.max_length or model.sequence_length)
        self.sequence_length = self.max_length  # at most; `resolve_length` sets the batches'
        self.tokenizer = tokenizer.kind
        self.normalize = tokenizer.normalize
        self.sentencepiece_model_type = base_config.get("sentencepiece_model_type", "unigram")
        self.vocabulary_size = base_config.get("vocabulary_size")
        self.precision = "float32"
        self.validation_fraction = VALIDATION_FRACTION  # labeled_split's, recorded in `validation`

    def resolve_length(self, train_rows, width=None):
        """The steps (default: `DEFAULT_EPOCHS` passes over `train_rows`), the warm-up, the
        evaluation interval and `sequence_length`, the `width` of the training batches (the
        longest encoded text, at most `max_length`); then every check of
        `TrainConfig.validate`."""
        if width is not None:
            self.sequence_length = int(width)
        if self.steps is None:
            self.steps = max(MIN_STEPS, math.ceil(DEFAULT_EPOCHS * train_rows / self.batch_size))
        if self.warmup_steps is None:
            self.warmup_steps = max(1, self.steps // 10)
        if self.eval_interval is None:
            self.eval_interval = math.ceil(self.steps / min(EVALUATIONS, self.steps))
        if self.tokenizer is not None:  # resolved from the base: the whole check
            self.validate()

    def to_dict(self):
        """The settings as config.json records them: data described, the language
        model's settings left out."""
        values = dataclasses.asdict(dataclasses.replace(self, data=None, val_data=None))
        for name, _ in LANGUAGE_MODEL_ONLY:
            values.pop(name)
        return {**values, "data": describe_data(self.data),
                "val_data": describe_data(self.val_data)}
