"""SavedModel export for servers: text in, text out, plus the step API.

Signatures (TensorFlow Serving conventions; inputs have no defaults, so the
default one is minimal):

- `serving_default(prompts: string[batch], max_new_tokens: int32)` ->
  `{"text": string[batch]}`: greedy continuations, tokenizer in the graph.
- `sample(prompts, max_new_tokens, temperature: float32, top_k: int32,
  top_p: float32, seed: int64)` -> `{"text"}`: `temperature <= 0` is
  greedy, `top_k <= 0` and `top_p >= 1` switch those filters off.
- a fine-tuned model with a prompt template (`tokenizer.prompt_template`,
  see `keras_lm.prompt_template`): `serving_default` and `sample` put each
  prompt through it in the graph, and `sample_raw` (the inputs of
  `sample`) takes prompts as they are.
- `logits(token_ids: int32[batch, time])` -> `{"logits"}`.
- `prefill(token_ids, <state...>)` -> `{"logits", <state...>}` and
  `decode(token_ids: int32[batch], position: int32, <state...>)` ->
  `{"logits", <state...>}`: the model's step API, the state passed in and
  out as named tensors (`layer_0_key`, ... or `layer_0_h`, ...) whose
  `max_length` is the model's context.

Beside the graph, `assets.extra/tokenizer.json` is the tokenizer in plain
JSON (`Tokenizer.save`, its prompt template included): what a server
(`keras-lm serve --model=`) needs to count tokens and render chats; and
`assets.extra/model.json` gives the context (`sequence_length`) and
`vocabulary_size`.

A prompt that does not fit the context with `max_new_tokens` loses its
beginning (a served graph cannot stop to ask); `max_new_tokens` is clipped
to `[1, context - 1]`. The directory loads with plain TensorFlow:

    import tensorflow as tf
    served = tf.saved_model.load("saved_models/quickstart/saved_model")
    served.signatures["serving_default"](
        prompts=tf.constant(["def "]), max_new_tokens=tf.constant(50))["text"]
"""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_lm.export.schema import ExportSchema
from keras_lm.generation.decoding import sampling_loop
from keras_lm.generation.generate import special_ids
from keras_lm.generation.samplers import tensor_sampler
from keras_lm.io_utils import atomic_path, write_json
from keras_lm.prompt_template import PromptTemplate
from keras_lm.tokenizers import TOKENIZER_FILE

SIGNATURES = ("serving_default", "sample", "logits", "prefill", "decode")
# Only with a prompt template: `sample` without it.
RAW_SIGNATURE = "sample_raw"
# The tokenizer as plain JSON inside the SavedModel (TensorFlow Serving ignores
# assets.extra/): what a server needs to count tokens and render chats.
TOKENIZER_ASSET = os.path.join("assets.extra", TOKENIZER_FILE)
# The model's context and vocabulary: the graph's signatures do not show the
# context of an LSTM (its state has no time axis).
MODEL_ASSET = os.path.join("assets.extra", "model.json")


def export_saved_model(model, tokenizer, path):
    """Writes `model` and `tokenizer` as a SavedModel directory at `path` (atomically).

    Example:
    >>> import tempfile, os
    >>> from keras_lm.models import LSTMLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> model = LSTMLM.from_preset("tiny", vocabulary_size=259)
    >>> export_saved_model(model, ByteTokenizer(), os.path.join(tempfile.mkdtemp(), "sm"))
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(tokenizer)
    template = PromptTemplate(getattr(tokenizer, "prompt_template", None))
    prompts = tf.TensorSpec([None], tf.string, name="prompts")
    max_new_tokens = tf.TensorSpec([], tf.int32, name="max_new_tokens")

    def templated(prompts):
        if template.is_identity:
            return prompts
        return tf.strings.join([template.prefix, prompts, template.suffix])

    def serving_default(prompts, max_new_tokens):
        greedy = tensor_sampler(tf.constant(0.0), tf.constant(0), tf.constant(1.0))
        seed = tf.constant([0, 0], tf.int64)
        return {"text": generate_text(model, tokenizer, templated(prompts), max_new_tokens,
                                      greedy, seed)}

    def sample_raw(prompts, max_new_tokens, temperature, top_k, top_p, seed):
        select = tensor_sampler(temperature, top_k, top_p)
        seed = tf.stack([seed, tf.constant(0, tf.int64)])
        return {"text": generate_text(model, tokenizer, prompts, max_new_tokens, select, seed)}

    def sample(prompts, max_new_tokens, temperature, top_k, top_p, seed):
        return sample_raw(templated(prompts), max_new_tokens, temperature, top_k, top_p, seed)

    sample_inputs = [
        prompts,
        max_new_tokens,
        tf.TensorSpec([], tf.float32, name="temperature"),
        tf.TensorSpec([], tf.int32, name="top_k"),
        tf.TensorSpec([], tf.float32, name="top_p"),
        tf.TensorSpec([], tf.int64, name="seed"),
    ]
    archive.add_endpoint("serving_default", serving_default, [prompts, max_new_tokens])
    archive.add_endpoint("sample", sample, sample_inputs)
    if not template.is_identity:
        archive.add_endpoint(RAW_SIGNATURE, sample_raw, sample_inputs)
    archive.add_endpoint(
        "logits",
        lambda token_ids: {"logits": model(token_ids, training=False)},
        [tf.TensorSpec([None, None], tf.int32, name="token_ids")],
    )
    schema = ExportSchema.of(model, layout="saved_model")
    names = schema.state_names

    def prefill(token_ids, *state):
        logits, state = model.prefill(token_ids, dict(zip(names, state)))
        return {"logits": logits, **state}

    def decode(token_ids, position, *state):
        logits, state = model.decode(token_ids, dict(zip(names, state)), position)
        return {"logits": logits, **state}

    # Batch None: a server batches requests; `prefill` takes any prompt length.
    archive.add_endpoint(
        "prefill", prefill, list(schema.tensor_specs("prefill", batch_size=None).values())
    )
    archive.add_endpoint(
        "decode", decode, list(schema.tensor_specs("decode", batch_size=None).values())
    )
    with atomic_path(path) as tmp:
        archive.write_out(tmp, verbose=False)
        os.makedirs(os.path.dirname(os.path.join(tmp, TOKENIZER_ASSET)), exist_ok=True)
        tokenizer.save(os.path.join(tmp, TOKENIZER_ASSET))
        write_json(os.path.join(tmp, MODEL_ASSET), {
            "sequence_length": int(model.sequence_length),
            "vocabulary_size": int(model.vocabulary_size)})


def generate_text(model, tokenizer, prompts, max_new_tokens, select, seed):
    """The generation loop of `keras_lm.generation` with dynamic shapes, text in and out."""
    sequence_length = model.sequence_length
    max_new_tokens = tf.clip_by_value(max_new_tokens, 1, sequence_length - 1)
    batch = tf.shape(prompts)[0]
    ids = tokenizer.encode(prompts)  # ragged (batch, None)
    ids = tf.concat([tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tokenizer.bos_id)), ids], 1)
    full_lengths = tf.cast(ids.row_lengths(), tf.int32)
    # Keep the end of each prompt that fits beside max_new_tokens.
    lengths = tf.minimum(full_lengths, sequence_length - max_new_tokens)
    longest = tf.reduce_max(lengths)
    columns = tf.range(longest)[None, :]
    dense = ids.to_tensor(default_value=tokenizer.pad_id)
    kept = tf.gather(
        dense, tf.minimum((full_lengths - lengths)[:, None] + columns, tf.shape(dense)[1] - 1),
        batch_dims=1,
    )
    kept = tf.where(columns < lengths[:, None], kept, tokenizer.pad_id)
    padding = tf.fill([batch, sequence_length - longest], tokenizer.pad_id)
    buffer = tf.concat([kept, padding], axis=1)

    prefill_length = tf.reduce_min(lengths)
    logits, state = model.prefill(
        buffer[:, :prefill_length], model.initial_state(batch, sequence_length)
    )
    # As `generate`: never <pad> or <bos>, unless that id is <eos> too (GPT-2).
    banned = tf.constant(np.isin(np.arange(model.vocabulary_size),
                                 special_ids(tokenizer)["banned_ids"]))
    carry = sampling_loop(
        model,
        select,
        dict(
            ids=buffer,
            state=state,
            logits=logits[:, -1],
            position=prefill_length,
            done=tf.zeros([batch], tf.bool),
            num_new=tf.zeros([batch], tf.int32),
        ),
        steps=tf.constant(sequence_length),
        lengths=lengths,
        max_new_tokens=max_new_tokens,
        end_id=tf.constant(tokenizer.eos_id),
        pad_id=tf.constant(tokenizer.pad_id),
        banned=banned,
        seed=seed,
    )
    new = tf.range(max_new_tokens)[None, :]
    tokens = tf.gather(
        carry["ids"], tf.minimum(lengths[:, None] + new, sequence_length - 1), batch_dims=1
    )
    keep = (new < carry["num_new"][:, None]) & (tokens != tokenizer.eos_id)
    return tokenizer.decode(tf.ragged.boolean_mask(tokens, keep))
