"""A batch of unrelated requests decoded together: each row its own sampler, seed and limit.

`decode_tokens` (what `generate` runs) compiles one program per sampler and
shares one seed and one `max_new_tokens` across its batch: right for one
user's batch, wrong for a server, whose batch mixes requests that only
arrived together. Here every option is a per-row tensor (`Row`), so:

- the compiled programs depend on the shape only: one XLA loop per
  `(batch_size, max_length)`, and a prefill (not XLA) of a power-of-two
  number of tokens. A server pads its batches to a few `batch_size`
  buckets and compiles them all at start-up (`warm_up`); no request
  compiles anything;
- a row draws its random numbers from its own seed and position, so its
  text does not depend on the other rows (up to float rounding: a batch's
  shortest prompt decides how much of each prompt the prefill runs);
- a row can be stopped between calls (`stop`: a client went away, a stop
  string appeared) and the batch ends when every row has.

Example:
>>> from keras_lm.models import TransformerLM
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
>>> rows = [Row([257, 100, 101], max_new_tokens=3), Row([257, 102], 2, temperature=0.8, seed=1)]
>>> batch = RowBatch(model, rows, batch_size=2, end_id=258, pad_id=0, banned_ids=(0, 257))
>>> new = [[] for _ in rows]
>>> while not batch.finished:
...     for row, tokens in enumerate(batch.step(2)):
...         new[row] += tokens
>>> [len(tokens) <= row.max_new_tokens for tokens, row in zip(new, rows)]
[True, True]
"""

import dataclasses
import random
import weakref

import numpy as np
import tensorflow as tf

from keras_lm.generation import decoding


@dataclasses.dataclass(frozen=True)
class Row:
    """One sequence to continue: its prompt ids (with `<bos>`) and its own options.

    `temperature` 0 is greedy; `top_k` 0 and `top_p` 1 switch those filters
    off; `seed` None picks one at random.
    """

    prompt_ids: list
    max_new_tokens: int
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = None


SEED_LIMIT = 2**63  # seeds are 0 .. 2**63 - 1


def seed_words(seed):
    """The `[word, 0]` int32 pair a row draws with: every bit of a seed in 0..2**63 - 1 counts.

    XLA's draws take int32 seeds; the low 32 bits are mixed with the high
    ones, so seeds 5 and 2**31 + 5 (or 2**32 + 5) draw differently, and a
    seed below 2**31 keeps the word it always had.

    >>> seed_words(5), seed_words(2**31 + 5) != seed_words(5), seed_words(2**32 + 5) != seed_words(5)
    ([5, 0], True, True)
    """
    if not (isinstance(seed, int) and 0 <= seed < SEED_LIMIT):
        raise ValueError(f"seed must be an integer in 0..2**63-1, got {seed!r}")
    low, high = seed & 0xFFFFFFFF, seed >> 32
    word = low ^ ((high * 0x9E3779B1) & 0xFFFFFFFF)  # high 0: the low word as it is
    return [word - (1 << 32) if word >= 1 << 31 else word, 0]


def check_row(row, max_length):
    """Raises `ValueError` unless the row's prompt and `max_new_tokens` fit `max_length`."""
    if not row.prompt_ids or len(row.prompt_ids) + row.max_new_tokens > max_length \
            or row.max_new_tokens < 1:
        raise ValueError(f"rows: a prompt of {len(row.prompt_ids)} tokens and "
                         f"max_new_tokens={row.max_new_tokens} do not fit {max_length}")


def prefill_lengths(model, max_length=None):
    """The prefill sizes a batch may use: powers of two that leave room for one new token."""
    longest = min(model.longest_prefill, (max_length or model.sequence_length) - 1)
    return [1 << i for i in range(longest.bit_length())]


def warm_up(model, batch_sizes, max_length=None):
    """Compiles the loop and runs every prefill size for these batch sizes; returns the loop count.

    One XLA loop per batch size (seconds each); the prefills are not
    compiled by XLA (one traced function per batch size), but TensorFlow's
    first run of each shape is slow too, so each runs once here.
    """
    for batch_size in batch_sizes:
        for length in prefill_lengths(model, max_length):
            rows = [Row([0] * length, max_new_tokens=1)]
            RowBatch(model, rows, batch_size, end_id=-1, pad_id=0, max_length=max_length).step(1)
    return len(batch_sizes)


_concrete = weakref.WeakKeyDictionary()  # model -> {shape: concrete function of the loop}
_prefills = weakref.WeakKeyDictionary()  # model -> {max_length: (weights, tf.function)}


def prefill_program(model, max_length=None):
    """The prefill of rows of any count and length from position 0: `(logits, state)`.

    One `tf.function` per cache length (not XLA: XLA compiles one program
    per shape, seconds each, and a prefill runs once per batch or join),
    traced once for every shape: a batch-size bucket's program per bucket
    would be the same code traced again, which TensorFlow warns about.
    """
    max_length = max_length or model.sequence_length
    programs = _prefills.setdefault(model, {})
    variables = len(model.weights)
    if max_length not in programs or programs[max_length][0] != variables:

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], autograph=False)
        def prefill(token_ids):
            state = model.initial_state(tf.shape(token_ids)[0], max_length)
            logits, state = model.prefill(token_ids, state)
            return logits[:, -1], state

        programs[max_length] = (variables, prefill)
    return programs[max_length][1]


def prefill_programs(model):
    """`{max_length: tf.function}`: the prefills made for `model` (to count their traces)."""
    return {key: program for key, (_, program) in _prefills.get(model, {}).items()}


def _concrete_loop(model, shape, arguments):
    """The loop program as a concrete function for these arguments' shapes and dtypes.

    Calling it skips `tf.function`'s matching of the arguments to a trace,
    a few milliseconds per call (and the loop runs a few steps per call).
    """
    functions = _concrete.setdefault(model, {})
    if shape not in functions:
        program = decoding._program(model, "rows", None, shape)
        functions[shape] = program.get_concrete_function(*arguments[0], **arguments[1])
    return functions[shape]


class RowBatch:
    """Up to `batch_size` rows decoded together in one compiled loop, a few steps per call.

    Args:
        model: a `LanguageModel` (the step API).
        rows: `Row`s, at most `batch_size`; `len(prompt_ids) + max_new_tokens`
            must fit `max_length`.
        batch_size: the compiled batch; missing rows are padding (born done).
        end_id: a row stops after producing this id (it is not returned).
        pad_id: written after a row stops.
        banned_ids: ids never sampled (padding, begin-of-text).
        max_length: the cache length (default: the model's context). One
            value for every batch, so that one loop program per batch size serves all.
    """

    def __init__(self, model, rows, batch_size, *, end_id, pad_id, banned_ids=(), max_length=None):
        if not 0 < len(rows) <= batch_size:
            raise ValueError(f"rows: 1 to batch_size={batch_size} rows, got {len(rows)}")
        max_length = max_length or model.sequence_length
        for row in rows:
            check_row(row, max_length)
        self.rows = list(rows)
        self.end_id = end_id
        # Padding rows repeat the first row's prompt (so the batch's shortest
        # prompt, hence its prefill, is that of the real rows) and start done.
        padding = dataclasses.replace(rows[0], max_new_tokens=1)
        padded = self.rows + [padding] * (batch_size - len(rows))
        self.lengths = np.array([len(r.prompt_ids) for r in padded], np.int32)
        ids = np.full((batch_size, max_length), pad_id, np.int32)
        for i, row in enumerate(padded):
            ids[i, : len(row.prompt_ids)] = row.prompt_ids
        # The prefill runs a power of two of tokens (few shapes, all run once in
        # `warm_up`: TensorFlow's first run of a new shape is slow); the loop
        # forces the rest of each prompt, one position per step.
        prefill_length = decoding.prefill_bucket(int(self.lengths[: len(rows)].min()),
                                                 model.longest_prefill)
        prefill = prefill_program(model, max_length)
        logits, state = prefill(tf.constant(ids[:, :prefill_length]))
        max_new = np.array([r.max_new_tokens for r in padded], np.int32)
        seeds = [random.randrange(SEED_LIMIT) if r.seed is None else r.seed for r in padded]
        self._constants = dict(
            temperature=tf.constant([float(r.temperature) for r in padded], tf.float32),
            top_k=tf.constant([min(max(int(r.top_k), 0), model.vocabulary_size) for r in padded],
                              tf.int32),
            top_p=tf.constant([float(r.top_p) for r in padded], tf.float32),
            lengths=tf.constant(self.lengths),
            max_new_tokens=tf.constant(max_new),
            end_id=tf.constant(end_id, tf.int32),
            pad_id=tf.constant(pad_id, tf.int32),
            banned=decoding._banned_mask(model.vocabulary_size, banned_ids),
            # int32: XLA's draws take no int64 seeds.
            seed=tf.constant([seed_words(s) for s in seeds], tf.int32),
        )
        self._carry = dict(
            ids=tf.constant(ids),
            state=state,
            logits=logits,
            position=tf.constant(prefill_length, tf.int32),
            done=tf.constant(np.arange(batch_size) >= len(rows)),
            num_new=tf.zeros((batch_size,), tf.int32),
        )
        self._run = _concrete_loop(model, (batch_size, max_length),
                                   ((self._carry, tf.constant(1)), self._constants))
        self._end = min(max_length, int((self.lengths + max_new).max()))
        # Steps until every row has its first new token (the rest of the prompts, then one).
        self.steps_to_first_token = int(self.lengths[: len(rows)].max()) - prefill_length + 1
        self._returned = np.zeros(len(rows), np.int32)
        self.ended = np.zeros(len(rows), bool)  # produced end_id
        self.row_done = np.zeros(len(rows), bool)
        self.finished = False

    def step(self, steps):
        """Runs up to `steps` positions; returns each row's new ids since the last call."""
        if self.finished:
            return [[] for _ in self.rows]
        self._carry = self._run(self._carry, tf.constant(steps, tf.int32), **self._constants)
        num_new = self._carry["num_new"].numpy()[: len(self.rows)]
        ids = self._carry["ids"].numpy()
        chunk = []
        for i, length in enumerate(self.lengths[: len(self.rows)]):
            tokens = ids[i, length + self._returned[i] : length + num_new[i]].tolist()
            if self.end_id in tokens:
                self.ended[i] = True
                tokens = tokens[: tokens.index(self.end_id)]
            chunk.append(tokens)
        self._returned = num_new
        done = self._carry["done"].numpy()
        self.row_done = done[: len(self.rows)]  # rows with all their tokens (or stopped)
        self.finished = bool(done.all()) or int(self._carry["position"]) >= self._end
        return chunk

    def stop(self, row):
        """Stops `row` now (its later tokens are not computed into the batch's length)."""
        done = self._carry["done"].numpy()
        done[row] = True
        self._carry["done"] = tf.constant(done)
        self.finished = bool(done.all())
