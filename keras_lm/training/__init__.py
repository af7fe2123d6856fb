"""Training: the run itself, its configuration, sources, callbacks and views."""

from keras_lm.training.callbacks import (
    LanguageModelLogs,
    SampleWriter,
    WallClockSchedule,
    run_callbacks,
)
from keras_lm.training.config import TrainConfig
from keras_lm.training.distribute import Distribution, make_strategy
from keras_lm.training.recipes import RECIPES, recipe_defaults
from keras_lm.training.sources import TaskSource, TextSource, make_source
from keras_lm.training.tensorboard import (
    AttentionMaps,
    EmbeddingProjector,
    HParamsLogger,
    PositionLoss,
    tensorboard_callbacks,
)
from keras_lm.training.trainer import build_model, train
from keras_lm.scoring import evaluate_files  # where it was before the scoring layer
