"""Layers of the Transformer language model."""

from keras_lm.layers.causal_self_attention import CausalSelfAttention
from keras_lm.layers.transformer_block import TransformerBlock
