"""Generating text with a trained model."""

from keras_lm.generation.generate import generate
