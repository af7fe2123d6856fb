"""Generating text: the compiled decoding loop, samplers, streaming."""

from keras_lm.generation.generate import encode_prompts, generate, special_ids, stream
from keras_lm.generation.row_batch import Row, RowBatch, warm_up
from keras_lm.generation.slot_batch import SlotBatch, rows_supported, warm_up_slots
from keras_lm.generation.samplers import (
    SAMPLERS,
    BeamSampler,
    GreedySampler,
    Sampler,
    TopKSampler,
    TopPSampler,
    get_sampler,
)
from keras_lm.generation.text_stream import TextStream, cut_at_stop
