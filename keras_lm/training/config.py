"""The settings of a training run (written beside its outputs as config.json).

Every field of `TrainConfig` is one setting, and its metadata (help text,
choices, the flag's name where it differs) is what `keras-lm train` turns
into its flags: a new option is one field here. Each rule is checked once,
by the layer that owns the setting (`validate` calls those checks early, so
a mistake is reported before any work starts).
"""

import dataclasses
import inspect
import math

from keras_lm import data, tokenizers
from keras_lm.data.synthetic import TASK_PARAMETERS, TASKS, Task
from keras_lm.errors import UsageError
from keras_lm.models import MODELS, PRESETS
from keras_lm.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    check_optimizer,
    check_optimizer_options,
    check_schedule,
)
from keras_lm.tokenizers.normalization import NORMALIZATIONS, check_normalization
from keras_lm.tokenizers.sentencepiece_tokenizer import MODEL_TYPES
from keras_lm.training.distribute import STRATEGIES, check_strategy
from keras_lm.training.recipes import RECIPES, apply_recipe, recipe_defaults

PRECISIONS = ("float32", "mixed_bfloat16")
# Samples are at most this long unless --sample_tokens says otherwise.
DEFAULT_SAMPLE_TOKENS = 200


def setting(default, help, *, choices=None, flag=None, factory=None):
    """A `TrainConfig` field: its default, and the metadata its flag is made from.

    `flag`: the flag's name where it differs from the field's (`False`: no
    flag of its own).
    """
    metadata = {"help": help, "choices": choices, "flag": flag}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. Field names are the `keras-lm train` flags
    (but `vocabulary_size` is `--vocab_size`, `sample_prompts` `--sample_prompt`).

    `TrainConfig(...)` holds plain defaults; `TrainConfig.from_recipe(name,
    ...)` starts from a recipe's settings, as `keras-lm train` does.

    Example:
    >>> config = TrainConfig(preset="tiny", steps=10, eval_interval=5)
    >>> config.validate()
    >>> config.model, config.recipe
    ('transformer', None)
    """

    recipe: str = setting(None, "Named default configuration: its settings, then the ones "
                          "given (`TrainConfig.from_recipe`).", choices=tuple(RECIPES))
    model: str = setting("transformer", "Model family.", choices=tuple(MODELS))
    preset: str = setting("small", "Model size: tiny, small or base.")
    model_args: dict = setting(
        None, "Constructor overrides, e.g. 'hidden_dim=256,num_layers=6'.", factory=dict)
    corpus: str = setting("pystdlib", "Built-in corpus used without --train_files.",
                          choices=data.CORPORA)
    # A synthetic task instead of text (keras_lm.data.synthetic); its
    # parameters are flags of their own (--mqar_num_pairs, ...).
    task: str = setting(None, "Train on a synthetic task instead of text: "
                        f"{', '.join(TASKS)} (keras_lm.data.synthetic); --vocab_size is "
                        "then its number of ids.")
    task_args: dict = setting(None, "The task's parameters.", flag=False, factory=dict)
    train_files: str = setting(None, "Comma-separated files, directories or globs.")
    val_files: str = setting(
        None, "Validation files (default: a by-file split of the training files).")
    validation_fraction: float = setting(
        0.05, "Share held out for validation: of the files (10 or more), else of each file's "
        "end, cut at a line boundary.")
    tokenizer: str = setting(
        "byte", "byte, char, or a subword vocabulary learned from (a sample of) the training "
        "files.", choices=tokenizers.TOKENIZERS)
    vocabulary_size: int = setting(
        None, "Vocabulary size: wordpiece/sentencepiece (default 4096), the maximum for char.",
        flag="vocab_size")
    sentencepiece_model_type: str = setting("unigram", "SentencePiece algorithm.",
                                            choices=MODEL_TYPES)
    normalize: str = setting(
        "none", "Unicode normalisation before tokenising (training, generation and export "
        "alike).", choices=NORMALIZATIONS)
    sequence_length: int = setting(256, "Context length in tokens.")
    batch_size: int = setting(32, "Sequences per step (the global batch under a strategy).")
    steps: int = setting(1000, "Training steps.")
    sequence_warmup_steps: int = setting(
        0, "A sequence-length warm-up: the first this many steps see windows of "
        "sequence_length / 4, four times as many per batch (the same tokens per step).")
    batch_warmup_steps: int = setting(
        0, "A batch-size warm-up: the first this many steps (a multiple of 4) read "
        "batch_size / 4 sequences each, the same windows in the same order.")
    epochs: float = setting(None, "Passes over the training files (instead of --steps).")
    eval_interval: int = setting(200, "Steps between validations, samples, backups.")
    val_steps: int = setting(20, "Validation batches per interval (the end reads all).")
    optimizer: str = setting("adamw", "Optimizer.", choices=OPTIMIZERS)
    learning_rate: float = setting(1e-3, "Peak learning rate.")
    warmup_steps: int = setting(None, "Linear warm-up steps (default: 5% of the steps).")
    schedule: str = setting(
        "cosine", "Learning-rate schedule after the warm-up: cosine decay to 10% of the peak, "
        "or wsd (warm-up / stable / decay): the peak held, then a linear decay to 10% over "
        "the last --decay_fraction of the steps (or of the time with --train_minutes).",
        choices=SCHEDULES)
    decay_fraction: float = setting(0.2, "Share of the run the wsd schedule decays over.")
    beta2: float = setting(
        None, "Adam's second-moment decay (adam, adamw, muon's AdamW part; default 0.95, "
        "muon 0.999).")
    adam_learning_rate: float = setting(
        None, "--optimizer=muon: peak rate of its AdamW part (embeddings, 1-D weights, an "
        "untied head); --learning_rate is then the hidden matrices' (default: the same).")
    weight_decay: float = setting(0.1, "Decoupled weight decay.")
    clipnorm: float = setting(1.0, "Global gradient-norm clip.")
    dropout: float = setting(None, "Dropout rate (default: the preset's).")
    precision: str = setting("float32", "Compute precision.", choices=PRECISIONS)
    jit_compile: bool = setting(
        None, "Compile training with XLA (default: the family's choice).")
    train_minutes: float = setting(
        None, "Train until this many minutes after the start, the learning-rate schedule "
        "following the clock (--steps becomes an upper bound). Giving --steps or --epochs "
        "alone turns a recipe's clock off.")
    seed: int = setting(0, "Random seed.")
    output_dir: str = setting(None, "Output directory (default: saved_models/<recipe>).")
    sample_prompts: list = setting(None, "Prompt of the samples (repeatable).",
                                   flag="sample_prompt", factory=lambda: [""])
    sample_tokens: int = setting(
        None, f"Tokens per sample (default: up to {DEFAULT_SAMPLE_TOKENS}, as many as fit the "
        "context).")
    temperature: float = setting(0.8, "Sampling temperature of the samples.")
    shuffle_buffer: int = setting(2048, "Windows in the shuffle buffer.")
    verbose: int = setting(1, "0 silent; 1 a live progress line on a terminal, and one line "
                           "per evaluation; 2 only the lines (piped output never gets the "
                           "live line).")
    # TensorBoard views (see keras_lm.training.tensorboard).
    samples: bool = setting(True, "Write samples to TensorBoard's text tab and samples.txt.")
    attention_maps: bool = setting(
        True, "TensorBoard images of every layer's and head's attention on a probe text "
        "(Transformer only).")
    position_loss: bool = setting(
        True, "TensorBoard image of the validation loss by position in the context.")
    embedding_projector: bool = setting(
        True, "The token embedding and its tokens for TensorBoard's Projector tab.")
    hparams: bool = setting(
        True, "The run's settings and final metrics for TensorBoard's HParams tab.")
    histograms: bool = setting(False, "TensorBoard histograms of the weights per layer.")
    profile_steps: tuple = setting(
        None, "Trace training steps 'first,last' (e.g. '5,7') for TensorBoard's profile tab.")
    # tf.distribute (see keras_lm.training.distribute); batch_size is global.
    strategy: str = setting(
        "default", "tf.distribute strategy: default (one device), mirrored (this machine's "
        "devices), multi_worker (the cluster in TF_CONFIG), tpu. --batch_size stays the "
        "global batch.", choices=STRATEGIES)
    devices: str = setting(
        None, "Devices of --strategy=mirrored, e.g. 'GPU:0,GPU:1', or 'CPU:0,CPU:1' to split "
        "the CPU into logical devices (default: every GPU, else the CPU).")

    @classmethod
    def from_recipe(cls, name="quickstart", **given):
        """The config of recipe `name` with the settings `given` applied on top.

        The rules (`keras_lm.training.recipes.apply_recipe`): given steps or
        epochs turn a recipe's clock off; a recipe's model_args stay with its
        model family; its sample length is capped by a shorter context.
        `keras-lm train --recipe=name --flag=value` is exactly this call.

        Example:
        >>> config = TrainConfig.from_recipe("quickstart", steps=50)
        >>> config.recipe, config.batch_size, config.steps, config.train_minutes
        ('quickstart', 8, 50, None)
        """
        return cls(**{**apply_recipe(cls.recipe_settings(name), given), "recipe": name})

    @staticmethod
    def recipe_settings(name):
        """The settings of recipe `name` (a subclass reads its own table)."""
        return recipe_defaults(name)

    def check_finite(self):
        """Raises `UsageError` for a NaN or infinite number in any float setting."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type is float and value is not None and not math.isfinite(value):
                raise UsageError(f"{field.name} must be a finite number, got {value}",
                                 argument=field.name)

    def validate(self):
        """Raises `UsageError` naming the setting for the first bad one."""
        self.check_finite()
        self._validate_model()
        for name, minimum in (("sequence_length", 2), ("batch_size", 1), ("steps", 1),
                              ("eval_interval", 1), ("val_steps", 1)):
            _at_least(name, getattr(self, name), minimum)
        if self.task is not None:
            self.make_task()  # the task checks its own parameters
            for name in ("epochs", "train_files", "val_files", "sequence_warmup_steps",
                         "batch_warmup_steps"):
                if getattr(self, name) not in (None, 0):
                    raise UsageError(f"{name}={getattr(self, name)}: not used with "
                                     f"task={self.task} (a synthetic source; give steps)",
                                     argument=name)
        else:
            self._validate_text()
        check_optimizer(self.optimizer, self.learning_rate)
        check_schedule(self.schedule, self.decay_fraction)
        check_optimizer_options(self.optimizer, self.beta2, self.adam_learning_rate)
        _choose("precision", self.precision, PRECISIONS)
        for name in ("epochs", "train_minutes"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise UsageError(f"{name} must be > 0, got {getattr(self, name)}",
                                 argument=name)
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}", argument="dropout")
        if self.temperature < 0:
            raise UsageError(f"temperature must be >= 0, got {self.temperature}",
                             argument="temperature")
        if self.profile_steps is not None:
            first, last = self.profile_steps
            if not 1 <= first <= last:
                raise UsageError(f"profile_steps: expected 1 <= first <= last, got "
                                 f"{first},{last}", argument="profile_steps")
            if self.epochs is None and last > self.steps:
                raise UsageError(f"profile_steps: last step {last} is past steps={self.steps}",
                                 argument="profile_steps")
        check_strategy(self.strategy, self.devices, self.train_minutes)

    def _validate_model(self):
        _choose("model", self.model, MODELS)
        _choose("preset", self.preset, PRESETS[self.model])
        accepted = set(inspect.signature(MODELS[self.model].__init__).parameters)
        accepted -= {"self", "kwargs", "vocabulary_size", "sequence_length", "pad_id"}
        for name in self.model_args:
            _choose("model_args", name, sorted(accepted))
        check = getattr(MODELS[self.model], "check_arguments", None)
        if check is not None:  # a bad value, named before anything is written
            try:
                check(**self.model_args)
            except ValueError as error:
                raise UsageError(f"model_args: {error}", argument="model_args") from None

    def _validate_warmups(self):
        factor = data.WARMUP_FACTOR
        for name in ("sequence_warmup_steps", "batch_warmup_steps"):
            _at_least(name, getattr(self, name), 0)
        if self.sequence_warmup_steps and self.batch_warmup_steps:
            raise UsageError(
                f"batch_warmup_steps={self.batch_warmup_steps}: choose one warm-up, not both "
                f"(sequence_warmup_steps={self.sequence_warmup_steps})",
                argument="batch_warmup_steps")
        if self.sequence_warmup_steps and self.sequence_length % factor:
            raise UsageError(
                f"sequence_warmup_steps={self.sequence_warmup_steps} needs a sequence_length "
                f"divisible by {factor}, got {self.sequence_length}",
                argument="sequence_warmup_steps")
        if not self.batch_warmup_steps:
            return
        if self.batch_warmup_steps % factor:
            raise UsageError(f"batch_warmup_steps must be a multiple of {factor}, got "
                             f"{self.batch_warmup_steps}", argument="batch_warmup_steps")
        if self.batch_size % factor:
            raise UsageError(
                f"batch_warmup_steps={self.batch_warmup_steps} needs a batch_size divisible "
                f"by {factor}, got {self.batch_size}", argument="batch_warmup_steps")
        if self.strategy != "default":
            raise UsageError(f"batch_warmup_steps={self.batch_warmup_steps}: not supported "
                             f"with strategy={self.strategy}", argument="batch_warmup_steps")

    def tokens_after(self, steps):
        """Tokens that `steps` training steps read (fewer while the batch warms up).

        Example:
        >>> TrainConfig(batch_size=8, sequence_length=4, batch_warmup_steps=4).tokens_after(6)
        96
        """
        return data.tokens_after(steps, self.batch_size * self.sequence_length,
                                 self.batch_warmup_steps)

    def _validate_text(self):
        _choose("tokenizer", self.tokenizer, tokenizers.TOKENIZERS)
        self._validate_warmups()
        check_normalization(self.normalize)
        _choose("sentencepiece_model_type", self.sentencepiece_model_type, MODEL_TYPES)
        if self.vocabulary_size is not None and self.tokenizer == "byte":
            raise UsageError(
                f"vocabulary_size={self.vocabulary_size}: not used by tokenizer=byte (259 ids); "
                "choose tokenizer=char, wordpiece or sentencepiece", argument="vocabulary_size")
        if self.sentencepiece_model_type != "unigram" and self.tokenizer != "sentencepiece":
            raise UsageError(
                f"sentencepiece_model_type={self.sentencepiece_model_type}: only used by "
                f"tokenizer=sentencepiece, got tokenizer={self.tokenizer}",
                argument="sentencepiece_model_type")
        if self.sample_tokens is not None:
            _at_least("sample_tokens", self.sample_tokens, 1)
        if self.sample_tokens is not None and self.sample_tokens >= self.sequence_length:
            raise UsageError(
                f"sample_tokens must be < sequence_length={self.sequence_length} "
                f"(samples fit the model's context), got {self.sample_tokens}",
                argument="sample_tokens")
        if not 0 < self.validation_fraction < 1:
            raise UsageError(f"validation_fraction must be in (0, 1), got "
                             f"{self.validation_fraction}", argument="validation_fraction")

    def sample_length(self):
        """Tokens per sample: `sample_tokens`, else as many as fit (at most 200)."""
        if self.sample_tokens is not None:
            return self.sample_tokens
        return max(1, min(DEFAULT_SAMPLE_TOKENS, self.sequence_length - 1))

    def make_task(self):
        """The run's `Task` (raises UsageError naming a bad parameter)."""
        for name in self.task_args:
            if name not in TASK_PARAMETERS:
                raise UsageError(f"task_args: unknown task parameter {name!r}; "
                                 f"choose from {', '.join(TASK_PARAMETERS)}", argument="task_args")
        return Task(self.task, self.sequence_length, self.vocabulary_size, **self.task_args)

    def to_dict(self):
        return dataclasses.asdict(self)


def _choose(name, value, choices):
    if value not in choices:
        raise UsageError(f"{name}: unknown value {value!r}; choose from {', '.join(choices)}",
                         argument=name)


def _at_least(name, value, minimum):
    if value is None or value < minimum:
        raise UsageError(f"{name} must be >= {minimum}, got {value}", argument=name)
