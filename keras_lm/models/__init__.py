"""Language models: a Transformer and an LSTM family, named sizes, and a classifier on them."""

from keras_lm.models.hub_causal_lm import HubCausalLM
from keras_lm.models.language_model import LanguageModel
from keras_lm.models.lstm_lm import LSTMLM
from keras_lm.models.presets import PRESETS
from keras_lm.models.text_classifier import TextClassifier
from keras_lm.models.transformer_lm import TransformerLM

MODELS = {"transformer": TransformerLM, "lstm": LSTMLM}
