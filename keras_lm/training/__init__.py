"""Training: optimizers, metrics, callbacks, recipes and the run itself."""

from keras_lm.training.callbacks import (
    LanguageModelLogs,
    SampleWriter,
    WallClockSchedule,
    standard_callbacks,
)
from keras_lm.training.config import TrainConfig
from keras_lm.training.distribute import Distribution, make_strategy
from keras_lm.training.tensorboard import (
    AttentionMaps,
    EmbeddingProjector,
    HParamsLogger,
    PositionLoss,
    tensorboard_callbacks,
)
from keras_lm.scoring import evaluate_files
from keras_lm.metrics import TokenAccuracy
from keras_lm.optimizers import OPTIMIZERS, make_optimizer, warmup_cosine
from keras_lm.training.recipes import RECIPES, recipe_defaults
from keras_lm.training.trainer import train
