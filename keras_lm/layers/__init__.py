"""Layers of the Transformer language model."""

from keras_lm.layers.bigram_hash_embedding import BigramHashEmbedding
from keras_lm.layers.causal_self_attention import CausalSelfAttention
from keras_lm.layers.smear import Smear
from keras_lm.layers.transformer_block import TransformerBlock
from keras_lm.layers.unet_skips import UNetSkips
