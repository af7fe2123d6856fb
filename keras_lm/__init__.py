"""keras_lm: build, train, inspect and ship small language models."""

__version__ = "0.1.0"
