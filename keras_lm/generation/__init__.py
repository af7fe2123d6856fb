"""Generating text: the compiled decoding loop, samplers, streaming."""

from keras_lm.generation.generate import encode_prompts, generate, stream
from keras_lm.generation.samplers import (
    SAMPLERS,
    BeamSampler,
    GreedySampler,
    Sampler,
    TopKSampler,
    TopPSampler,
    get_sampler,
)
