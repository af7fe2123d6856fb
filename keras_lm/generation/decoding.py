"""The compiled decoding loop over a model's `prefill`/`decode` step API.

Prompts of different lengths share one batch, right-padded, all rows
stepping through the same positions (the layout keras-hub uses too):

1. `prefill` runs the first `prefill_length` tokens of every row at once
   (the shortest prompt rounded down to a power of two, so that each prompt
   length does not compile a new program, and at most `model.longest_prefill`);
2. `decode` then runs one position per step. At a position still inside a
   row's prompt, the row's next prompt token is forced; past it, the sampler
   picks one. Each row stops at its end token or after `max_new_tokens`.

The loop runs under XLA (on CPU too) inside one `tf.function` per model,
sampler and shape bucket `(batch, prefill_length, max_length)`, traced once;
it runs a bounded number of steps per call, which is how
streaming works: call it for one step (or a few), read the new tokens,
call again with the returned state.
"""

import weakref

import numpy as np
import tensorflow as tf
from keras import ops

from keras_lm.generation.samplers import BeamSampler, tensor_sampler

# model -> (its number of variables, {(kind, sampler, shape): tf.function}). A
# trace bakes in the layers' Python branches: when variables are added (LoRA's
# `enable_lora` after a first generation) the programs are made anew.
_programs = weakref.WeakKeyDictionary()
# The functions below use `autograph=False`: their loops are `tf.while_loop`s
# already, and autograph's conversion of every layer call made a first
# generation ~15% slower (idle, 5 shapes of a tiny model: 17.4 s -> 15.0 s).
_NEG_INF = -float("inf")


def bucket_length(length, limit, multiple=64):
    """`length` rounded up to a multiple of `multiple`, at most `limit`."""
    return min(limit, -(-length // multiple) * multiple)


def prefill_bucket(length, longest):
    """The largest power of two <= `length` and <= `longest` (prefill program sizes)."""
    return 1 << (min(length, longest).bit_length() - 1)


def decode_tokens(
    model,
    prompts,
    max_new_tokens,
    sampler,
    *,
    end_id,
    pad_id,
    banned_ids=(),
    seed=None,
    steps_per_call=None,
):
    """Yields lists of new token ids per row, `steps_per_call` positions at a time.

    Args:
        model: a `LanguageModel` (the step API).
        prompts: list of non-empty lists of token ids.
        max_new_tokens: new tokens per row at most.
        sampler: a `keras_lm.generation.samplers.Sampler` (not beam search).
        end_id: a row stops after producing this id (it is not yielded).
        pad_id: written after a row stops.
        banned_ids: ids never sampled (padding, begin-of-text).
        seed: int; the same seed gives the same tokens.
        steps_per_call: positions per compiled call; None runs to the end.

    Yields:
        One list per row of the ids produced since the previous yield.
    """
    batch = len(prompts)
    lengths, ids, logits, state, shape = _prefill_prompts(model, prompts, max_new_tokens, pad_id)
    prefill_length, max_length = shape[1:]
    run = _program(model, "sample", sampler, shape)
    constants = dict(
        lengths=tf.constant(lengths),
        max_new_tokens=tf.constant(max_new_tokens, tf.int32),
        end_id=tf.constant(end_id, tf.int32),
        pad_id=tf.constant(pad_id, tf.int32),
        banned=_banned_mask(model.vocabulary_size, banned_ids),
        seed=tf.constant([seed, 0], tf.int64)
        if seed is not None
        else tf.random.uniform((2,), maxval=2**31 - 1, dtype=tf.int64),
    )
    carry = dict(
        ids=tf.constant(ids),
        state=state,
        logits=logits,
        position=tf.constant(prefill_length, tf.int32),
        done=tf.zeros((batch,), tf.bool),
        num_new=tf.zeros((batch,), tf.int32),
    )
    end = min(max_length, int(lengths.max()) + max_new_tokens)
    steps = tf.constant(steps_per_call or end, tf.int32)
    yielded = np.zeros(batch, np.int32)
    while True:
        carry = run(carry, steps, **constants)
        num_new = carry["num_new"].numpy()
        if (num_new > yielded).any():
            new_ids = carry["ids"].numpy()
            chunk = []
            for row in range(batch):
                start = lengths[row] + yielded[row]
                tokens = new_ids[row, start : lengths[row] + num_new[row]].tolist()
                chunk.append([t for t in tokens if t != end_id])
            yielded = num_new
            yield chunk
        if carry["done"].numpy().all() or int(carry["position"]) >= end:
            return


def beam_search_tokens(model, prompts, max_new_tokens, beam_width, *, end_id, pad_id, banned_ids=()):
    """The best continuation per row under beam search (list of id lists).

    Beams are ranked by their summed log-probability while searching; the one
    returned has the best mean log-probability per new token.
    """
    batch = len(prompts)
    # Each prompt once per beam: rows row * beam_width ... are its beams.
    beams = [prompt for prompt in prompts for _ in range(beam_width)]
    lengths, ids, logits, state, shape = _prefill_prompts(model, beams, max_new_tokens, pad_id)
    prefill_length = shape[1]
    run = _program(model, "beam", BeamSampler(beam_width), shape)
    ids, num_new, scores = run(
        ids=tf.constant(ids),
        state=state,
        logits=logits,
        position=tf.constant(prefill_length, tf.int32),
        lengths=tf.constant(lengths),
        max_new_tokens=tf.constant(max_new_tokens, tf.int32),
        end_id=tf.constant(end_id, tf.int32),
        pad_id=tf.constant(pad_id, tf.int32),
        banned=_banned_mask(model.vocabulary_size, banned_ids),
    )
    ids, num_new = ids.numpy(), num_new.numpy()
    # The best beam by log-probability per token: by the raw sum, a beam that
    # ends at once would beat every longer text.
    per_token = (scores.numpy() / np.maximum(num_new, 1)).reshape(batch, beam_width)
    results = []
    for row in range(batch):
        best = row * beam_width + int(np.argmax(per_token[row]))
        tokens = ids[best, lengths[best] : lengths[best] + num_new[best]].tolist()
        results.append([t for t in tokens if t != end_id])
    return results


def _prefill_prompts(model, prompts, max_new_tokens, pad_id):
    """Right-pads the prompts into their bucket and prefills them.

    Returns `(lengths, ids, logits, state, shape)`; `shape` is the bucket
    `(batch, prefill_length, max_length)`.
    """
    lengths = np.array([len(p) for p in prompts], np.int32)
    max_length = bucket_length(int(lengths.max()) + max_new_tokens, model.sequence_length)
    prefill_length = prefill_bucket(int(lengths.min()), model.longest_prefill)
    ids = np.full((len(prompts), max_length), pad_id, np.int32)
    for row, prompt in enumerate(prompts):
        ids[row, : len(prompt)] = prompt
    shape = (len(prompts), prefill_length, max_length)
    prefill = _program(model, "prefill", None, shape)
    logits, state = prefill(tf.constant(ids[:, :prefill_length]))
    return lengths, ids, logits, state, shape


def _banned_mask(vocabulary_size, banned_ids):
    mask = np.zeros(vocabulary_size, bool)
    mask[list(banned_ids)] = True
    return tf.constant(mask)


def compiled_programs(model):
    """`{(kind, sampler, shape): tf.function}`: the compiled functions kept for `model`.

    Each traces once; its `experimental_get_tracing_count()` says whether a
    later call retraced it.
    """
    return dict(_programs.get(model, (0, {}))[1])


def _program(model, kind, sampler, shape):
    """The compiled function of this kind for `model` and a shape bucket, made once.

    One `tf.function` per bucket (not one retraced per shape), so each traces
    exactly once and TensorFlow's retracing warning stays meaningful.
    """
    variables = len(model.weights)
    if model not in _programs or _programs[model][0] != variables:
        _programs[model] = (variables, {})
    programs = _programs[model][1]
    key = (kind, sampler, shape)
    if key not in programs:
        if kind == "prefill":
            programs[key] = _make_prefill(model, shape)
        elif kind == "prefill_any_length":
            programs[key] = _make_prefill_any_length(model, shape)
        else:
            make = {"sample": _make_sample_loop, "beam": _make_beam_loop,
                    "rows": _make_row_loop}[kind]
            programs[key] = make(model, sampler, shape)
    return programs[key]


def _make_prefill(model, shape):
    batch, _, max_length = shape

    @tf.function(jit_compile=True, autograph=False)
    def prefill(token_ids):
        logits, state = model.prefill(token_ids, model.initial_state(batch, max_length))
        return logits[:, -1], state

    return prefill


def _make_prefill_any_length(model, shape):
    """A prefill for every prompt length of a `(batch, max_length)` bucket: traced once.

    Not under XLA: XLA compiles one program per length (seconds each), and a
    prefill runs once per batch, where the compiled loop runs once per token.
    """
    batch, max_length = shape

    @tf.function(input_signature=[tf.TensorSpec([batch, None], tf.int32)], autograph=False)
    def prefill(token_ids):
        logits, state = model.prefill(token_ids, model.initial_state(batch, max_length))
        return logits[:, -1], state

    return prefill


def _write_column(ids, column, position):
    """`ids[:, position] = column`, as one dynamic-update-slice."""
    return ops.slice_update(ids, (0, position), column[:, None])


def _make_sample_loop(model, sampler, shape):
    @tf.function(jit_compile=True, autograph=False)
    def run(carry, steps, **constants):
        return sampling_loop(model, sampler, carry, steps, **constants)

    return run


def _step_seed(seed, position):
    """The seed of one position: `(2,)` for the batch, or `(batch, 2)`, one per row."""
    if seed.shape.rank == 2:  # row i draws with (its seed, position): not with its neighbours'
        return seed + tf.stack([tf.constant(0, seed.dtype), tf.cast(position, seed.dtype)])
    return tf.random.experimental.stateless_fold_in(seed, position)


def _make_row_loop(model, sampler, shape):
    """The loop of `RowBatch`: the sampler's options are per-row inputs, not part of the key."""

    @tf.function(jit_compile=True, autograph=False)
    def run(carry, steps, temperature, top_k, top_p, **constants):
        select = tensor_sampler(temperature, top_k, top_p)
        return sampling_loop(model, select, carry, steps, **constants)

    return run


def sampling_loop(model, select, carry, steps, lengths, max_new_tokens, end_id, pad_id, banned, seed):
    """Up to `steps` positions of the decoding loop, as plain TensorFlow ops.

    `carry` holds `ids` (batch, max_length), the model `state`, the `logits`
    (batch, vocabulary) for the token at `position`, and per row `done` and
    `num_new`; `select(logits, seed)` picks the next ids. Compiled by
    `decode_tokens` and `row_batch.RowBatch`, and traced as it is into an
    exported SavedModel. `max_new_tokens` is a scalar or one limit per row;
    `seed` is `(2,)` or one `[seed, 0]` per row `(batch, 2)`.
    """
    last = tf.minimum(tf.shape(carry["ids"])[1], tf.reduce_max(lengths + max_new_tokens))

    def condition(step, carry):
        return (step < steps) & (carry["position"] < last) & ~tf.reduce_all(carry["done"])

    def body(step, carry):
        ids, position, done = carry["ids"], carry["position"], carry["done"]
        logits = tf.where(banned, _NEG_INF, carry["logits"])
        sampled = select(logits, _step_seed(seed, position))
        in_prompt = position < lengths
        token = tf.where(in_prompt, tf.gather(ids, position, axis=1), sampled)
        token = tf.where(done, pad_id, token)
        is_new = ~in_prompt & ~done
        num_new = carry["num_new"] + tf.cast(is_new, tf.int32)
        done = done | (is_new & (token == end_id)) | (num_new >= max_new_tokens)
        logits, state = model.decode(token, carry["state"], position)
        carry = dict(
            ids=_write_column(ids, token, position),
            state=state,
            logits=logits,
            position=position + 1,
            done=done,
            num_new=num_new,
        )
        return step + 1, carry

    _, carry = tf.while_loop(condition, body, (tf.constant(0), carry))
    return carry


def _make_beam_loop(model, sampler, shape):
    beam_width = sampler.beam_width

    @tf.function(jit_compile=True, autograph=False)
    def run(ids, state, logits, position, lengths, max_new_tokens, end_id, pad_id, banned):
        rows = ids.shape[0]  # static: the loop keeps every shape
        batch = rows // beam_width
        vocabulary = logits.shape[-1]
        last = tf.minimum(tf.shape(ids)[1], tf.reduce_max(lengths) + max_new_tokens)
        # Beams of a row start identical: only the first is live at first, so
        # the first choice picks `beam_width` different tokens from it.
        scores = tf.tile(tf.constant([0.0] + [-1e9] * (beam_width - 1)), [batch])
        done = tf.zeros((rows,), tf.bool)
        num_new = tf.zeros((rows,), tf.int32)

        def condition(ids, state, logits, position, scores, done, num_new):
            return (position < last) & ~tf.reduce_all(done)

        def body(ids, state, logits, position, scores, done, num_new):
            log_probs = tf.nn.log_softmax(tf.where(banned, _NEG_INF, logits))
            in_prompt = position < lengths
            # Rows in their prompt, and finished beams, have one allowed token.
            forced = tf.where(done, pad_id, tf.gather(ids, position, axis=1))
            only_forced = tf.where(tf.one_hot(forced, vocabulary) > 0, 0.0, _NEG_INF)
            log_probs = tf.where((in_prompt | done)[:, None], only_forced, log_probs)
            candidates = tf.reshape(scores[:, None] + log_probs, (batch, beam_width * vocabulary))
            scores, best = tf.math.top_k(candidates, k=beam_width)  # sorted, best first
            scores = tf.reshape(scores, (rows,))
            parent = tf.reshape(best // vocabulary + tf.range(batch)[:, None] * beam_width, (rows,))
            token = tf.reshape(best % vocabulary, (rows,))
            ids, done, num_new = (tf.gather(t, parent) for t in (ids, done, num_new))
            state = {name: tf.gather(t, parent) for name, t in state.items()}
            is_new = ~in_prompt & ~done
            num_new = num_new + tf.cast(is_new, tf.int32)
            done = done | (is_new & (token == end_id)) | (num_new >= max_new_tokens)
            logits, state = model.decode(token, state, position)
            return _write_column(ids, token, position), state, logits, position + 1, scores, done, num_new

        ids, _, _, _, scores, _, num_new = tf.while_loop(
            condition, body, (ids, state, logits, position, scores, done, num_new)
        )
        return ids, num_new, scores

    return run
