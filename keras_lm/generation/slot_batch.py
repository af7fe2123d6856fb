"""Continuous batching: rows join a running decode loop between calls and leave when done.

`RowBatch` decodes a fixed set of rows that start together: a request that
arrives meanwhile waits for the whole batch. A `SlotBatch` is a batch of
*slots* that keeps running: between two compiled calls a new row takes a free
slot (`add`), and a row that ended (or is `stop`ped) frees its slot. Each row
steps through its **own** positions (the model's `decode` takes one position
per row, `(batch,)`), so a row's text does not depend on when it joined or
on its neighbours (up to float rounding), and every option is per row, as
in `RowBatch`: sampler, seed and token limit.

Joining a running batch costs no program of its own for a short prompt (up
to `read_prompt_tokens`, 16 by default): the next call of the loop resets
the row's slot (an empty state, position 0) and reads its prompt one
position per step, alongside the other rows' decoding. Longer prompts, and
every prompt that starts an idle batch (nothing runs alongside), are
prefilled: the rows that join at the same call together (one prefill per
prompt-length bucket, batched by count), written into their slots by one
insert program.
`counts` says how often each happened (loop calls, prefill calls, insert
calls, rows read in the loop).

The compiled programs depend on `(batch_size, max_length)` only: one XLA
loop per batch-size bucket; the prefill (`row_batch.prefill_program`) and
the insert (not XLA) are one traced function each for every size (prefills
are padded to a few counts: TensorFlow's first run of a shape is slow, and
`warm_up_slots` runs each). `resize` moves the live rows into another
bucket's batch. `slot_programs(model)` lists the loops made,
`insert_programs(model)` the inserts, to count them.

Example:
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
>>> batch = SlotBatch(model, batch_size=2, end_id=258, pad_id=0, banned_ids=(0, 257))
>>> first = batch.add(Row([257, 100, 101], max_new_tokens=3))
>>> chunk = batch.step(2)            # the first row runs alone (prefilled)...
>>> second = batch.add(Row([257, 102], max_new_tokens=2, temperature=0.8, seed=1))
>>> while batch.live:              # ...then both, each at its own position
...     chunk = batch.step(2)
>>> batch.free_slots(), batch.counts["prefill_calls"], batch.counts["read_in_loop"]
([0, 1], 1, 1)
"""

import collections
import random
import weakref

import numpy as np
import tensorflow as tf

from keras_lm.generation import decoding
from keras_lm.generation.row_batch import (Row, check_row, prefill_lengths, prefill_program,
                                            seed_words)
from keras_lm.generation.samplers import tensor_sampler

READ_PROMPT_TOKENS = 16  # prompts up to this long are read by the loop, longer ones prefilled

_loops = weakref.WeakKeyDictionary()  # model -> {(batch_size, max_length): (weights, tf.function)}
_inserts = weakref.WeakKeyDictionary()  # model -> {max_length: (weights, tf.function)}


def slot_programs(model):
    """`{(batch_size, max_length): tf.function}`: the slot loops compiled for `model`."""
    return {key: run for key, (_, run) in _loops.get(model, {}).items()}


def insert_programs(model):
    """`{max_length: tf.function}`: the insert programs of prefilled rows (any batch size)."""
    return {key: run for key, (_, run) in _inserts.get(model, {}).items()}


def count_buckets(batch_size):
    """The batch sizes of a joint prefill: powers of two below `batch_size`, and it.

    >>> count_buckets(16), count_buckets(6)
    ([1, 2, 4, 8, 16], [1, 2, 4, 6])
    """
    return sorted({1 << i for i in range(batch_size.bit_length()) if 1 << i < batch_size}
                  | {batch_size})


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


def _cached(store, model, key, make):
    """`make()`'s program for `key`, made once per model (and anew after LoRA adds weights)."""
    programs = store.setdefault(model, {})
    variables = len(model.weights)
    if key not in programs or programs[key][0] != variables:
        programs[key] = (variables, make())
    return programs[key][1]


def _slot_loop(model, batch_size, max_length):
    """The compiled loop of this bucket: first the rows that join, then up to `steps` steps."""

    def make():
        @tf.function(jit_compile=True, autograph=False)
        def run(carry, steps, joins, temperature, top_k, top_p, **constants):
            select = tensor_sampler(temperature, top_k, top_p)
            carry = _join_rows(model, carry, **joins)
            return _rows_loop(model, select, carry, steps, **constants)

        return run

    return _cached(_loops, model, (batch_size, max_length), make)


def _insert_program(model, max_length, state, vocabulary_size):
    """Writes prefilled rows' states and logits into their slots: one graph call (not XLA:
    a scatter each), traced once for every batch size and number of rows."""

    def make():
        def spec(t):
            return tf.TensorSpec((None, *t.shape[1:]), t.dtype)

        states = tf.nest.map_structure(spec, state)
        logits = tf.TensorSpec((None, vocabulary_size), tf.float32)

        @tf.function(input_signature=[states, logits, tf.TensorSpec((None,), tf.int32), states,
                                      logits], autograph=False)
        def insert(state, logits, slots, new_state, new_logits):
            index = slots[:, None]
            state = tf.nest.map_structure(
                lambda whole, rows: tf.tensor_scatter_nd_update(whole, index, rows),
                state, new_state)
            return state, tf.tensor_scatter_nd_update(logits, index, new_logits)

        return insert

    return _cached(_inserts, model, max_length, make)


def _concrete(run, carry, steps, joins, constants):
    """`run`'s concrete function for these arguments: calling it skips `tf.function`'s
    matching of the arguments to a trace (milliseconds a call, as in `row_batch`)."""
    return run.get_concrete_function(carry, steps, joins, **constants)


def _rows_select(mask, new, old):
    """`new` in the rows where `mask` `(batch,)` holds, else `old` (any rank)."""
    return tf.where(tf.reshape(mask, [-1] + [1] * (len(old.shape) - 1)), new, old)


def _join_rows(model, carry, joined, fresh, start, prompt_ids):
    """The rows that join at this call: their prompt ids, start position, not done, no new
    tokens yet. A `fresh` one (its prompt read by the loop) starts from an empty state (an
    LSTM needs it; a Transformer's stale cache is masked anyway); a prefilled one keeps the
    state its insert wrote."""
    batch, max_length = prompt_ids.shape
    empty = model.initial_state(batch, max_length)
    state = tf.nest.map_structure(lambda e, s: _rows_select(fresh, tf.cast(e, s.dtype), s),
                                  empty, carry["state"])
    return dict(carry, state=state, ids=_rows_select(joined, prompt_ids, carry["ids"]),
                position=tf.where(joined, start, carry["position"]),
                done=carry["done"] & ~joined,
                num_new=tf.where(joined, tf.zeros_like(carry["num_new"]), carry["num_new"]))


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
        read_prompt_tokens: prompts up to this many tokens are read by the
            loop (no program of their own); longer ones are prefilled.
        counts: a `collections.Counter` to count into (`resize` hands its own on).
    """

    def __init__(self, model, batch_size, *, end_id, pad_id, banned_ids=(), max_length=None,
                 read_prompt_tokens=READ_PROMPT_TOKENS, counts=None):
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length or model.sequence_length
        self.end_id, self.pad_id = end_id, pad_id
        self.banned_ids = tuple(banned_ids)
        self.read_prompt_tokens = read_prompt_tokens
        self.counts = collections.Counter() if counts is None else counts
        self._banned = decoding._banned_mask(model.vocabulary_size, banned_ids)
        self._run = _slot_loop(model, batch_size, self.max_length)
        self._call = None  # its concrete function, once the arguments exist
        self.rows = [None] * batch_size  # the Row in each slot (None: free)
        self._options = np.zeros((batch_size, 5), np.int64)  # length, max_new, top_k, 2 seed words
        self._floats = np.zeros((batch_size, 2), np.float32)  # temperature, top_p
        self._floats[:, 1] = 1.0
        self._returned = np.zeros(batch_size, np.int32)
        self._positions = np.zeros(batch_size, np.int32)  # host copies after each call
        self.ended = np.zeros(batch_size, bool)  # produced end_id
        # Rows that join at the next call: the loop resets their slots first.
        self._joined = np.zeros(batch_size, bool)
        self._fresh = np.zeros(batch_size, bool)  # ...from an empty state (read in the loop)
        self._start = np.zeros(batch_size, np.int32)
        self._prompt_ids = np.full((batch_size, self.max_length), pad_id, np.int32)
        self._pending = []  # slots whose (long) prompts are prefilled before the next call
        self._joins = self._no_joins = None
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
        """Puts `row` in a free slot, where it starts at the next `step`; returns the slot.

        Nothing runs here: the next call reads a short prompt in the loop
        (while other rows run), or prefills it together with the others that
        joined.
        A row that does not fit `max_length` raises `ValueError` (and takes no slot).
        """
        check_row(row, self.max_length)
        free = self.free_slots()
        if not free:
            raise ValueError(f"add: all {self.batch_size} slots are taken")
        slot = free[0]
        length = len(row.prompt_ids)
        self._prompt_ids[slot] = self.pad_id
        self._prompt_ids[slot, :length] = row.prompt_ids
        # Reading a prompt in the loop is free only while other rows decode: a row that
        # starts an idle batch is prefilled (its first token comes sooner; the text is the
        # same up to float rounding, as in `RowBatch`).
        running = any(r is not None and not self._joined[s] for s, r in enumerate(self.rows))
        self._joined[slot] = True
        self._fresh[slot] = running and length <= self.read_prompt_tokens
        self._start[slot] = 0
        if not self._fresh[slot]:
            self._pending.append(slot)
        seed = random.randrange(2**63) if row.seed is None else row.seed
        top_k = min(max(int(row.top_k), 0), self.model.vocabulary_size)
        self._options[slot] = [length, row.max_new_tokens, top_k, *seed_words(seed)]
        self._floats[slot] = [row.temperature, row.top_p]
        self._positions[slot] = 0
        self.rows[slot] = row
        self._returned[slot] = 0
        self.ended[slot] = False
        self._constants = self._joins = None
        self.counts["joins"] += 1
        return slot

    def steps_to_first_token(self, slot):
        """Steps until the row in `slot` has its first new token (0 once it has one)."""
        if self._returned[slot] > 0:
            return 0
        if slot in self._pending:  # its prefill will run this much of the prompt
            length = int(self._options[slot, 0])
            return length - decoding.prefill_bucket(length, self.model.longest_prefill) + 1
        return max(1, int(self._options[slot, 0]) - int(self._positions[slot]) + 1)

    def step(self, steps):
        """Runs up to `steps` positions; returns `{slot: new ids}` for the live rows.

        Rows added since the last call join first. A row that ended (its end
        id or its limit) leaves: its slot is free after this call
        (`ended[slot]` says whether it produced its end id).
        """
        live = self.live
        if not live:
            return {}
        if self._pending:
            self._prefill_pending()
        if self._constants is None:
            self._constants = self._make_constants()
        joins = self._join_inputs()
        steps = tf.constant(steps, tf.int32)
        if self._call is None:
            self._call = _concrete(self._run, self._carry, steps, joins, self._constants)
        self._carry = self._call(self._carry, steps, joins, **self._constants)
        self.counts["loop_calls"] += 1
        self.counts["read_in_loop"] += int(self._fresh.sum())
        self._joined[:] = False
        self._fresh[:] = False
        self._joins = None
        return self._chunk(live)

    def _chunk(self, live):
        """Each live row's new ids since the last call; rows that are done leave."""
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

    def _join_inputs(self):
        """The loop's `joins` argument: which rows join, how, and their prompt ids."""
        if self._joins is None:
            if not self._joined.any() and self._no_joins is not None:
                self._joins = self._no_joins
            else:
                self._joins = dict(joined=tf.constant(self._joined), fresh=tf.constant(self._fresh),
                                   start=tf.constant(self._start),
                                   prompt_ids=tf.constant(self._prompt_ids))
                if not self._joined.any():
                    self._no_joins = self._joins
        return self._joins

    def _prefill_pending(self):
        """Prefills the long prompts that joined: one call per prefill length (as many rows
        as joined, padded to a count bucket), then one insert of all their states."""
        by_length = collections.defaultdict(list)
        for slot in self._pending:
            length = int(self._options[slot, 0])
            by_length[decoding.prefill_bucket(length, self.model.longest_prefill)].append(slot)
        slots, states, logits = [], [], []
        for prefill_length, group in sorted(by_length.items()):
            count = next(c for c in count_buckets(self.batch_size) if c >= len(group))
            padded = group + [group[0]] * (count - len(group))
            prefill = prefill_program(self.model, self.max_length)
            row_logits, state = prefill(tf.constant(self._prompt_ids[padded, :prefill_length]))
            self.counts["prefill_calls"] += 1
            slots += group
            states.append(tf.nest.map_structure(lambda t, k=len(group): t[:k], state))
            logits.append(tf.cast(row_logits[: len(group)], tf.float32))
            self._start[group] = prefill_length
            self._positions[group] = prefill_length
        insert = _insert_program(self.model, self.max_length, self._carry["state"],
                                 self.model.vocabulary_size)
        new_state = tf.nest.map_structure(lambda *parts: tf.concat(parts, 0), *states)
        self._carry["state"], self._carry["logits"] = insert(
            self._carry["state"], self._carry["logits"], tf.constant(slots, tf.int32), new_state,
            tf.concat(logits, 0))
        self.counts["insert_calls"] += 1
        self._pending = []

    def stop(self, slot):
        """Frees `slot` now (a client went away, a stop string appeared)."""
        if self.rows[slot] is None:
            return
        self.rows[slot] = None
        if slot in self._pending:
            self._pending.remove(slot)
        self._joined[slot] = self._fresh[slot] = False
        self._joins = None
        done = self._carry["done"].numpy()
        done[slot] = True
        self._carry["done"] = tf.constant(done)

    def resize(self, batch_size):
        """A `SlotBatch` of `batch_size` slots holding these live rows; returns `(batch, moves)`.

        `moves` maps each live row's old slot to its new one. The rows keep
        their caches, positions and options (and a row that has not started
        yet still joins at the next call): their text does not change.
        """
        live = self.live
        if len(live) > batch_size:
            raise ValueError(f"resize: {len(live)} live rows do not fit batch_size={batch_size}")
        other = SlotBatch(self.model, batch_size, end_id=self.end_id, pad_id=self.pad_id,
                          banned_ids=self.banned_ids, max_length=self.max_length,
                          read_prompt_tokens=self.read_prompt_tokens, counts=self.counts)
        # Empty places take a copy of some slot (born done): a gather of the whole carry.
        order = live + [self.free_slots()[0] if self.free_slots() else live[0]] * (
            batch_size - len(live))
        index = tf.constant(order, tf.int32)
        other._carry = tf.nest.map_structure(lambda t: tf.gather(t, index), self._carry)
        done = np.ones(batch_size, bool)
        done[: len(live)] = self._carry["done"].numpy()[live]
        other._carry["done"] = tf.constant(done)
        for name in ("rows", "_options", "_floats", "_returned", "ended", "_positions", "_joined",
                     "_fresh", "_start", "_prompt_ids"):
            values = getattr(self, name)
            target = getattr(other, name)
            for i, slot in enumerate(live):
                target[i] = values[slot]
        moves = {slot: i for i, slot in enumerate(live)}
        other._pending = [moves[slot] for slot in self._pending]
        self.counts["resizes"] += 1
        return other, moves

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


def warm_up_slots(model, batch_sizes, *, end_id, pad_id, max_length=None,
                  read_prompt_tokens=READ_PROMPT_TOKENS):
    """Compiles the loop of every batch size and the insert, and runs every prefill shape
    (count bucket x prefill length) once.

    Returns the number of loops compiled. After it, no request compiles anything.
    """
    max_length = max_length or model.sequence_length
    options = dict(end_id=end_id, pad_id=pad_id, max_length=max_length,
                   read_prompt_tokens=read_prompt_tokens)
    long_prompt = read_prompt_tokens + 1  # the shortest prefilled prompt
    rows = [Row([0], 1)] + ([Row([0] * long_prompt, 1)] if long_prompt < max_length else [])
    for batch_size in batch_sizes:
        batch = SlotBatch(model, batch_size, **options)
        for row in rows:  # the loop, then the insert of a prefilled row
            batch.add(row)
            while batch.live:
                batch.step(long_prompt)
    prefill = prefill_program(model, max_length)  # rows that start an idle batch: any length
    for count in count_buckets(max(batch_sizes)):
        for length in prefill_lengths(model, max_length):
            prefill(tf.zeros((count, length), tf.int32))
    return len(batch_sizes)
