"""The resolved configuration of a training run (written as config.json)."""

import dataclasses
import inspect

from keras_lm.errors import UsageError
from keras_lm.models import MODELS, PRESETS
from keras_lm.tokenizers import NORMALIZATIONS, TOKENIZERS
from keras_lm.tokenizers.sentencepiece_tokenizer import MODEL_TYPES
from keras_lm.optimizers import OPTIMIZERS

PRECISIONS = ("float32", "mixed_bfloat16")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run. Field names are the `keras-lm train` flags.

    Example:
    >>> config = TrainConfig(preset="tiny", steps=10, eval_interval=5)
    >>> config.validate()
    >>> config.model
    'transformer'
    """

    recipe: str = "quickstart"
    model: str = "transformer"
    preset: str = "small"
    model_args: dict = dataclasses.field(default_factory=dict)
    corpus: str = "pystdlib"
    # A synthetic task instead of text (keras_lm.data.synthetic), its flags in task_args.
    task: str = None
    task_args: dict = dataclasses.field(default_factory=dict)
    train_files: str = None
    val_files: str = None
    validation_fraction: float = 0.05
    tokenizer: str = "byte"
    vocab_size: int = None  # wordpiece/sentencepiece size (default 4096); char maximum
    sentencepiece_model_type: str = "unigram"
    normalize: str = "none"
    sequence_length: int = 256
    batch_size: int = 32
    steps: int = 1000
    epochs: float = None
    eval_interval: int = 200
    val_steps: int = 20
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    warmup_steps: int = None
    weight_decay: float = 0.1
    clipnorm: float = 1.0
    dropout: float = None
    precision: str = "float32"
    jit_compile: bool = None  # None: the model family's default
    train_minutes: float = None
    seed: int = 0
    output_dir: str = None
    sample_prompts: list = dataclasses.field(default_factory=lambda: [""])
    sample_tokens: int = 200
    temperature: float = 0.8
    shuffle_buffer: int = 2048
    verbose: int = 1
    # TensorBoard views (see keras_lm.training.tensorboard).
    samples: bool = True
    attention_maps: bool = True  # Transformer only
    position_loss: bool = True
    embedding_projector: bool = True
    hparams: bool = True
    histograms: bool = False
    profile_steps: tuple = None  # (first, last) training step to trace
    # tf.distribute (see keras_lm.training.distribute); batch_size is global.
    strategy: str = "default"
    devices: str = None  # mirrored only, e.g. "CPU:0,CPU:1"

    def validate(self):
        """Raises `UsageError` naming the flag for the first bad setting."""
        _choose("model", self.model, MODELS)
        _choose("preset", self.preset, PRESETS[self.model])
        accepted = set(inspect.signature(MODELS[self.model].__init__).parameters)
        accepted -= {"self", "kwargs", "vocabulary_size", "sequence_length", "pad_id"}
        for name in self.model_args:
            _choose("model_args", name, sorted(accepted))
        if self.task is not None:
            self._validate_task()
        _choose("tokenizer", self.tokenizer, TOKENIZERS)
        _choose("normalize", self.normalize, NORMALIZATIONS)
        _choose("sentencepiece_model_type", self.sentencepiece_model_type, MODEL_TYPES)
        if self.vocab_size is not None and self.tokenizer == "byte" and not self.task:
            raise UsageError(
                f"vocabulary_size={self.vocab_size}: not used by tokenizer=byte (259 ids); "
                "choose tokenizer=char, wordpiece or sentencepiece", argument="vocabulary_size")
        if self.sentencepiece_model_type != "unigram" and self.tokenizer != "sentencepiece":
            raise UsageError(
                f"sentencepiece_model_type={self.sentencepiece_model_type}: only used by "
                f"tokenizer=sentencepiece, got tokenizer={self.tokenizer}", argument="sentencepiece_model_type")
        _choose("optimizer", self.optimizer, OPTIMIZERS)
        _choose("precision", self.precision, PRECISIONS)
        _at_least("sequence_length", self.sequence_length, 2)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("steps", self.steps, 1)
        _at_least("eval_interval", self.eval_interval, 1)
        _at_least("val_steps", self.val_steps, 1)
        _at_least("sample_tokens", self.sample_tokens, 1)
        if self.sample_tokens >= self.sequence_length and not self.task:  # task runs: no samples
            raise UsageError(
                f"sample_tokens must be < sequence_length={self.sequence_length} "
                f"(samples fit the model's context), got {self.sample_tokens}", argument="sample_tokens")
        if self.epochs is not None and self.epochs <= 0:
            raise UsageError(f"epochs must be > 0, got {self.epochs}", argument="epochs")
        if not self.learning_rate > 0:
            raise UsageError(f"learning_rate must be > 0, got {self.learning_rate}", argument="learning_rate")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}", argument="dropout")
        if self.train_minutes is not None and self.train_minutes <= 0:
            raise UsageError(f"train_minutes must be > 0, got {self.train_minutes}", argument="train_minutes")
        if self.temperature < 0:
            raise UsageError(f"temperature must be >= 0, got {self.temperature}", argument="temperature")
        if self.profile_steps is not None:
            first, last = self.profile_steps
            if not 1 <= first <= last:
                raise UsageError(
                    f"profile_steps: expected 1 <= first <= last, got {first},{last}", argument="profile_steps")
            if self.epochs is None and last > self.steps:
                raise UsageError(
                    f"profile_steps: last step {last} is past steps={self.steps}", argument="profile_steps")
        _validate_distribution(self)
        if not 0 < self.validation_fraction < 1:
            raise UsageError(
                f"validation_fraction must be in (0, 1), got {self.validation_fraction}", argument="validation_fraction")

    def _validate_task(self):
        from keras_lm.training.task_run import task_from_config

        task_from_config(self)  # raises naming the task's flag
        for flag, given in (("epochs", self.epochs), ("train_files", self.train_files),
                            ("val_files", self.val_files)):
            if given is not None:
                raise UsageError(f"--{flag}={given}: not used with --task={self.task} "
                                 "(a synthetic source; give --steps)")

    def to_dict(self):
        return dataclasses.asdict(self)


def _validate_distribution(config):
    """The strategy checks that need no TensorFlow (devices are checked later)."""
    from keras_lm.training.distribute import STRATEGIES, parse_devices

    _choose("strategy", config.strategy, STRATEGIES)
    if config.devices is not None:
        if config.strategy != "mirrored":
            raise UsageError(f"devices={config.devices!r} applies to strategy=mirrored "
                             f"only, got strategy={config.strategy}", argument="devices")
        replicas = len(parse_devices(config.devices))
        if config.batch_size % replicas:
            raise UsageError(f"batch_size={config.batch_size} (the global batch) is not "
                             f"divisible by the {replicas} replicas of devices={config.devices}", argument="batch_size")
    if config.strategy == "multi_worker" and config.train_minutes:
        # Each worker would read its own clock and stop at its own step,
        # leaving the others waiting in a collective forever.
        raise UsageError(f"train_minutes={config.train_minutes} cannot end a multi_worker "
                         f"run (workers' clocks differ); give steps or epochs", argument="train_minutes")


def _choose(flag, value, choices):
    if value not in choices:
        raise UsageError(f"--{flag}: unknown value {value!r}; choose from {', '.join(choices)}")


def _at_least(flag, value, minimum):
    if value is None or value < minimum:
        raise UsageError(f"--{flag} must be >= {minimum}, got {value}")
