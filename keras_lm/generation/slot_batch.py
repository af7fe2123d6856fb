"""Continuous batching: rows join a running decode loop between calls and leave when done.

`RowBatch` decodes a fixed set of rows that start together: a request that
arrives meanwhile waits for the whole batch. A `SlotBatch` is a batch of
*slots* that keeps running: between two compiled calls a new row takes a free
slot (`add`: its prompt is prefilled alone, then its cache is written into
the slot), and a row that ended (or is `stop`ped) frees its slot. Each row
steps through its **own** positions (the model's `decode` takes one position
per row, `(batch,)`), so a row's text does not depend on when it joined or
on its neighbours (up to float rounding), and every option is per row, as
in `RowBatch`: sampler, seed and token limit.

The compiled programs depend on `(batch_size, max_length)` only: one XLA
loop per batch-size bucket, plus one batch-1 prefill for every prompt
length (not XLA). `resize` moves the live rows into another bucket's batch.
`slot_programs(model)` lists the loops made, to count them.

Example:
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
>>> batch = SlotBatch(model, batch_size=2, end_id=258, pad_id=0, banned_ids=(0, 257))
>>> first = batch.add(Row([257, 100, 101], max_new_tokens=3))
>>> chunk = batch.step(2)            # the first row runs alone...
>>> second = batch.add(Row([257, 102], max_new_tokens=2, temperature=0.8, seed=1))
>>> while batch.live:              # ...then both, each at its own position
...     chunk = batch.step(2)
>>> batch.free_slots()
[0, 1]
"""

import random
import weakref

import numpy as np
import tensorflow as tf

from keras_lm.generation import decoding
from keras_lm.generation.row_batch import Row, check_row, prefill_lengths, seed_words
from keras_lm.generation.samplers import tensor_sampler

_loops = weakref.WeakKeyDictionary()  # model -> {(batch_size, max_length): tf.function}


def slot_programs(model):
    """`{(batch_size, max_length): tf.function}`: the slot loops compiled for `model`."""
    return dict(_loops.get(model, {}))


def rows_supported(model, max_length=None):
    """Whether `model.decode` takes one position per row and agrees with its scalar form.

    Checked on two rows of an empty cache (a row at position 0, one at 1):
    the per-row call must give each row the logits of the scalar call at
    that row's position. A model whose step API takes a scalar position only
    (an imported keras-hub model, learned positions) answers False.
    """
    max_length = max_length or model.sequence_length
    try:
        tokens = tf.constant([1, 2], tf.int32)
        state = model.initial_state(2, max_length)
        rows, _ = model.decode(tokens, state, tf.constant([0, 1], tf.int32))
        at_1, _ = model.decode(tokens, state, tf.constant(1, tf.int32))
        at_0, _ = model.decode(tokens, state, tf.constant(0, tf.int32))
    except Exception:  # noqa: BLE001  (any failure means: not supported)
        return False
    expected = np.stack([np.asarray(at_0)[0], np.asarray(at_1)[1]])
    return bool(np.allclose(np.asarray(rows), expected, rtol=1e-4, atol=1e-4))


def _slot_loop(model, batch_size, max_length):
    """The compiled loop for this bucket, made once per model (and anew after LoRA adds weights)."""
    loops = _loops.setdefault(model, {})
    key = (batch_size, max_length)
    variables = len(model.weights)
    if key not in loops or loops[key][0] != variables:

        @tf.function(jit_compile=True, autograph=False)
        def run(carry, steps, temperature, top_k, top_p, **constants):
            select = tensor_sampler(temperature, top_k, top_p)
            return _rows_loop(model, select, carry, steps, **constants)

        loops[key] = (variables, run)
    return loops[key][1]


def _concrete(run, carry, steps, constants):
    """`run`'s concrete function for these arguments: calling it skips `tf.function`'s
    matching of the arguments to a trace (milliseconds a call, as in `row_batch`)."""
    return run.get_concrete_function(carry, steps, **constants)


def _rows_loop(model, select, carry, steps, lengths, max_new_tokens, end_id, pad_id, banned,
               seed):
    """Up to `steps` steps of every live row, each at its own `position` `(batch,)`.

    As `decoding.sampling_loop`, but per row: the token at a row's position
    is its prompt's while inside it, else drawn from its logits with
    `(its seed, its position)`, then written at that position.
    """
    last = tf.shape(carry["ids"])[1] - 1

    def condition(step, carry):
        return (step < steps) & ~tf.reduce_all(carry["done"])

    def body(step, carry):
        ids, position, done = carry["ids"], carry["position"], carry["done"]
        logits = tf.where(banned, -float("inf"), carry["logits"])
        row_seed = seed + tf.stack([tf.zeros_like(position), position], axis=1)
        sampled = select(logits, row_seed)
        in_prompt = position < lengths
        token = tf.where(in_prompt, tf.gather(ids, position[:, None], batch_dims=1)[:, 0], sampled)
        token = tf.where(done, pad_id, token)
        is_new = ~in_prompt & ~done
        num_new = carry["num_new"] + tf.cast(is_new, tf.int32)
        written = tf.one_hot(position, tf.shape(ids)[1], on_value=True, off_value=False)
        ids = tf.where(written & ~done[:, None], token[:, None], ids)
        logits, state = model.decode(token, carry["state"], position)
        new_done = done | (is_new & (token == end_id)) | (num_new >= max_new_tokens)
        carry = dict(ids=ids, state=state, logits=logits, done=new_done, num_new=num_new,
                     position=tf.where(done, position, tf.minimum(position + 1, last)))
        return step + 1, carry

    _, carry = tf.while_loop(condition, body, (tf.constant(0), carry))
    return carry


class SlotBatch:
    """`batch_size` slots decoded together; rows join (`add`) and leave between calls.

    Args:
        model: a `LanguageModel` whose `decode` takes one position per row
            (`rows_supported`).
        batch_size: the compiled batch (number of slots).
        end_id: a row stops after producing this id (it is not returned).
        pad_id: the id of empty places.
        banned_ids: ids never sampled (padding, begin-of-text).
        max_length: the cache length (default: the model's context).
    """

    def __init__(self, model, batch_size, *, end_id, pad_id, banned_ids=(), max_length=None):
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length or model.sequence_length
        self.end_id, self.pad_id = end_id, pad_id
        self.banned_ids = tuple(banned_ids)
        self._banned = decoding._banned_mask(model.vocabulary_size, banned_ids)
        self._prefill = decoding._program(model, "prefill_any_length", None, (1, self.max_length))
        self._run = _slot_loop(model, batch_size, self.max_length)
        self._call = None  # its concrete function, once the arguments exist
        self.rows = [None] * batch_size  # the Row in each slot (None: free)
        self._options = np.zeros((batch_size, 5), np.int64)  # length, max_new, top_k, 2 seed words
        self._floats = np.zeros((batch_size, 2), np.float32)  # temperature, top_p
        self._floats[:, 1] = 1.0
        self._returned = np.zeros(batch_size, np.int32)
        self._positions = np.zeros(batch_size, np.int32)  # host copies after each call
        self.ended = np.zeros(batch_size, bool)  # produced end_id
        state = model.initial_state(batch_size, self.max_length)
        self._carry = dict(
            ids=tf.fill((batch_size, self.max_length), tf.constant(pad_id, tf.int32)),
            state=state,
            logits=tf.zeros((batch_size, model.vocabulary_size), tf.float32),
            position=tf.zeros((batch_size,), tf.int32),
            done=tf.ones((batch_size,), tf.bool),
            num_new=tf.zeros((batch_size,), tf.int32),
        )
        self._constants = None

    @property
    def live(self):
        """Slots that hold a row."""
        return [slot for slot, row in enumerate(self.rows) if row is not None]

    def free_slots(self):
        return [slot for slot, row in enumerate(self.rows) if row is None]

    def add(self, row):
        """Prefills `row` alone and puts it in a free slot; returns the slot.

        A row that does not fit `max_length` raises `ValueError` (and takes no slot).
        """
        check_row(row, self.max_length)
        free = self.free_slots()
        if not free:
            raise ValueError(f"add: all {self.batch_size} slots are taken")
        slot = free[0]
        length = len(row.prompt_ids)
        prefill_length = decoding.prefill_bucket(length, self.model.longest_prefill)
        logits, state = self._prefill(tf.constant([row.prompt_ids[:prefill_length]], tf.int32))
        ids = np.full((1, self.max_length), self.pad_id, np.int32)
        ids[0, :length] = row.prompt_ids
        index = tf.constant([[slot]])
        carry = self._carry
        carry["state"] = tf.nest.map_structure(
            lambda whole, one: tf.tensor_scatter_nd_update(whole, index, one), carry["state"], state)
        for name, value in (("ids", ids), ("logits", logits), ("position", [prefill_length]),
                            ("done", [False]), ("num_new", [0])):
            carry[name] = tf.tensor_scatter_nd_update(
                carry[name], index, tf.constant(value, carry[name].dtype))
        seed = random.randrange(2**63) if row.seed is None else row.seed
        top_k = min(max(int(row.top_k), 0), self.model.vocabulary_size)
        self._options[slot] = [length, row.max_new_tokens, top_k, *seed_words(seed)]
        self._floats[slot] = [row.temperature, row.top_p]
        self._positions[slot] = prefill_length
        self.rows[slot] = row
        self._returned[slot] = 0
        self.ended[slot] = False
        self._constants = None
        return slot

    def steps_to_first_token(self, slot):
        """Steps until the row in `slot` has its first new token (0 once it has one)."""
        if self._returned[slot] > 0:
            return 0
        return max(1, int(self._options[slot, 0]) - int(self._positions[slot]) + 1)

    def step(self, steps):
        """Runs up to `steps` positions; returns `{slot: new ids}` for the live rows.

        A row that ended (its end id or its limit) leaves: its slot is free
        after this call (`ended[slot]` says whether it produced its end id).
        """
        live = self.live
        if not live:
            return {}
        if self._constants is None:
            self._constants = self._make_constants()
        steps = tf.constant(steps, tf.int32)
        if self._call is None:
            self._call = _concrete(self._run, self._carry, steps, self._constants)
        self._carry = self._call(self._carry, steps, **self._constants)
        self._positions = self._carry["position"].numpy()
        num_new = self._carry["num_new"].numpy()
        ids = self._carry["ids"].numpy()
        done = self._carry["done"].numpy()
        chunk = {}
        for slot in live:
            length = int(self._options[slot, 0])
            tokens = ids[slot, length + self._returned[slot]: length + num_new[slot]].tolist()
            if self.end_id in tokens:
                self.ended[slot] = True
                tokens = tokens[: tokens.index(self.end_id)]
            self._returned[slot] = num_new[slot]
            chunk[slot] = tokens
            if done[slot]:
                self.rows[slot] = None
        return chunk

    def stop(self, slot):
        """Frees `slot` now (a client went away, a stop string appeared)."""
        if self.rows[slot] is None:
            return
        self.rows[slot] = None
        done = self._carry["done"].numpy()
        done[slot] = True
        self._carry["done"] = tf.constant(done)

    def resize(self, batch_size):
        """A `SlotBatch` of `batch_size` slots holding these live rows; returns `(batch, moves)`.

        `moves` maps each live row's old slot to its new one. The rows keep
        their caches, positions and options: their text does not change.
        """
        live = self.live
        if len(live) > batch_size:
            raise ValueError(f"resize: {len(live)} live rows do not fit batch_size={batch_size}")
        other = SlotBatch(self.model, batch_size, end_id=self.end_id, pad_id=self.pad_id,
                          banned_ids=self.banned_ids, max_length=self.max_length)
        # Empty places take a copy of some slot (born done): a gather of the whole carry.
        order = live + [self.free_slots()[0] if self.free_slots() else live[0]] * (
            batch_size - len(live))
        index = tf.constant(order, tf.int32)
        other._carry = tf.nest.map_structure(lambda t: tf.gather(t, index), self._carry)
        done = np.ones(batch_size, bool)
        done[: len(live)] = self._carry["done"].numpy()[live]
        other._carry["done"] = tf.constant(done)
        for name in ("rows", "_options", "_floats", "_returned", "ended", "_positions"):
            values = getattr(self, name)
            kept = [values[s] for s in live]
            target = getattr(other, name)
            for i, value in enumerate(kept):
                target[i] = value
        return other, {slot: i for i, slot in enumerate(live)}

    def _make_constants(self):
        options = self._options
        return dict(
            temperature=tf.constant(self._floats[:, 0]),
            top_k=tf.constant(options[:, 2], tf.int32),
            top_p=tf.constant(self._floats[:, 1]),
            lengths=tf.constant(options[:, 0], tf.int32),
            max_new_tokens=tf.constant(options[:, 1], tf.int32),
            end_id=tf.constant(self.end_id, tf.int32),
            pad_id=tf.constant(self.pad_id, tf.int32),
            banned=self._banned,
            seed=tf.constant(options[:, 3:5].astype(np.int32), tf.int32),
        )


def warm_up_slots(model, batch_sizes, *, end_id, pad_id, max_length=None):
    """Compiles the slot loop of every batch size and runs every prefill length once.

    Returns the number of loops compiled. After it, no request compiles anything.
    """
    for batch_size in batch_sizes:
        batch = SlotBatch(model, batch_size, end_id=end_id, pad_id=pad_id, max_length=max_length)
        batch.add(Row([0], 1))
        batch.step(1)
    batch = SlotBatch(model, 1, end_id=end_id, pad_id=pad_id, max_length=max_length)
    for length in prefill_lengths(model, max_length):
        batch.add(Row([0] * length, 1))
        batch.step(1)
    return len(batch_sizes)
