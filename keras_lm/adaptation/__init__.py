"""Adapting a trained model to a task: fine-tuning, LoRA, classifier heads.

Sits just above `training` (it reuses the run directory, callbacks, console
and sources) and below `probes`:

- `finetune(FinetuneConfig(...))`: what `keras-lm finetune` runs: prompt ->
  response pairs with the loss on the responses (`PairsSource`), or
  continued training on text, fully or with LoRA;
- `finetune_classifier(ClassifierConfig(...))`: a classifier head on a
  trained language model (`keras-lm finetune --head=classifier`), through
  the same run directory, callbacks and resume;
- `enable_lora`, `save_adapters`, `load_adapters`: LoRA on a Transformer's
  Dense layers, and adapter files checked against their base.
"""

from keras_lm.adaptation.classifier import finetune_classifier
from keras_lm.adaptation.classifier_config import ClassifierConfig
from keras_lm.adaptation.config import FinetuneConfig
from keras_lm.adaptation.finetune import finetune
from keras_lm.adaptation.lora import (
    TARGETS,
    base_weights_digest,
    enable_lora,
    load_adapters,
    read_adapters,
    save_adapters,
)
from keras_lm.adaptation.pairs_source import PairsSource
from keras_lm.adaptation.recipes import FINETUNE_RECIPES

__all__ = ["FINETUNE_RECIPES", "TARGETS", "ClassifierConfig", "FinetuneConfig", "PairsSource",
           "base_weights_digest", "enable_lora", "finetune", "finetune_classifier",
           "load_adapters", "read_adapters", "save_adapters"]
