"""How the next token is picked from the logits: greedy, temperature, top-k, top-p, beam.

We do not use keras-hub's samplers: a keras-hub `Sampler.__call__` owns the
whole decoding loop (it runs `next(prompt, cache, index)` until the prompt
buffer is full), so it cannot run a few steps at a time (streaming, stop
strings), and its randomness lives in a `SeedGenerator` variable that each
call advances. Ours are pure functions of `(logits, seed)`, called inside our
compiled loop, so a seed gives the same text on every call.

Example:
>>> import tensorflow as tf
>>> sampler = get_sampler("top_k", top_k=2, temperature=0.7)
>>> int(sampler(tf.constant([[0.0, 5.0, 1.0]]), tf.constant([1, 2]))[0]) in (1, 2)
True
"""

import inspect

import tensorflow as tf

from keras_lm.errors import UsageError


class Sampler:
    """Samples from `softmax(logits / temperature)`; `temperature=0` is greedy.

    Subclasses narrow the distribution in `filter_logits` first. A sampler is
    immutable and hashable: compiled generation programs are cached per sampler.
    """

    name = "temperature"

    def __init__(self, temperature=1.0):
        if not temperature >= 0:
            raise UsageError(f"temperature must be >= 0 (0 means greedy), got {temperature}", argument="temperature")
        self.temperature = float(temperature)

    def __call__(self, logits, seed):
        """Picks one token id per row of `logits` `(batch, vocabulary)`.

        `seed` is a `(2,)` integer tensor (stateless random ops).
        """
        if self.temperature == 0:
            return tf.argmax(logits, axis=-1, output_type=tf.int32)
        logits = self.filter_logits(logits / self.temperature)
        return tf.random.stateless_categorical(logits, 1, seed, dtype=tf.int32)[:, 0]

    def filter_logits(self, logits):
        return logits

    def validate(self, vocabulary_size):
        """Raises UsageError (a ValueError) if the sampler cannot work with this vocabulary."""

    def _key(self):
        return (type(self), self.temperature)

    def __eq__(self, other):
        return isinstance(other, Sampler) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class GreedySampler(Sampler):
    """Always the most likely token."""

    name = "greedy"

    def __init__(self):
        super().__init__(temperature=0.0)


class TopKSampler(Sampler):
    """Samples among the `top_k` most likely tokens."""

    name = "top_k"

    def __init__(self, top_k, temperature=1.0):
        super().__init__(temperature)
        if not (isinstance(top_k, int) and top_k > 0):
            raise UsageError(f"top_k must be an integer > 0, got {top_k!r}", argument="top_k")
        self.top_k = top_k

    def filter_logits(self, logits):
        kth_best = tf.math.top_k(logits, k=self.top_k).values[:, -1:]
        return tf.where(logits < kth_best, -float("inf"), logits)

    def validate(self, vocabulary_size):
        if self.top_k > vocabulary_size:
            raise UsageError(
                f"top_k must be <= the vocabulary size {vocabulary_size}, got {self.top_k}", argument="top_k")

    def _key(self):
        return (*super()._key(), self.top_k)


class TopPSampler(Sampler):
    """Nucleus sampling: the fewest most-likely tokens whose probability reaches `top_p`."""

    name = "top_p"

    def __init__(self, top_p, temperature=1.0):
        super().__init__(temperature)
        if not 0 < top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {top_p}", argument="top_p")
        self.top_p = float(top_p)

    def filter_logits(self, logits):
        return keep_top_p(logits, self.top_p)

    def _key(self):
        return (*super()._key(), self.top_p)


class BeamSampler(Sampler):
    """Beam search: keeps the `beam_width` most likely continuations.

    Not a per-token sampler: `keras_lm.generation.decoding` runs its own loop
    for it. The result is the most likely beam (deterministic, no seed).
    """

    name = "beam"

    def __init__(self, beam_width):
        super().__init__(temperature=0.0)
        if not (isinstance(beam_width, int) and beam_width >= 1):
            raise UsageError(f"beam_width must be an integer >= 1, got {beam_width!r}", argument="beam_width")
        self.beam_width = beam_width

    def validate(self, vocabulary_size):
        if self.beam_width > vocabulary_size:
            raise UsageError(
                f"beam_width must be <= the vocabulary size {vocabulary_size}, "
                f"got {self.beam_width}", argument="beam_width")

    def _key(self):
        return (*super()._key(), self.beam_width)


def keep_top_p(logits, top_p):
    """`logits` with every token outside the top-p nucleus set to -inf (`top_p` may be a tensor)."""
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    probabilities = tf.nn.softmax(sorted_logits, axis=-1)
    # A token is kept if the tokens ranked above it hold less than top_p.
    mass_above = tf.cumsum(probabilities, axis=-1, exclusive=True)
    kept = tf.reduce_sum(tf.cast(mass_above < top_p, tf.int32), axis=-1)
    threshold = tf.gather(sorted_logits, tf.maximum(kept, 1) - 1, batch_dims=1)[:, None]
    return tf.where(logits < threshold, -float("inf"), logits)


# How many of the best tokens `tensor_sampler` looks at first. XLA on CPU
# sorts a whole vocabulary slowly (about 45 us a row for 259 tokens, as much
# as the small model's own step), but finds the best 64 several times faster;
# a row whose filters reach past them takes the full sort.
CANDIDATES = 64


def _filter_threshold(scaled, k, p, candidates):
    """The smallest kept logit per row `(batch, 1)`, and whether it is exact `(batch, 1)`.

    Top-k keeps the tokens at least as likely as the k-th best; top-p (over
    what top-k kept, renormalised) keeps the fewest best tokens whose mass
    reaches p, as `keep_top_p`. Both are read from the `candidates` best
    logits only: the threshold is exact where the k-th best and the end of
    the nucleus lie among them (with `candidates` = the vocabulary, always).
    """
    vocabulary = scaled.shape[-1]
    values = tf.math.top_k(scaled, k=candidates, sorted=True).values  # (batch, candidates)
    # The least candidate, as a reduction: XLA turns the sort into a (faster)
    # top-k only if nothing slices its output anywhere but at the start.
    last = tf.reduce_min(values, axis=-1, keepdims=True)
    uses_k = k < vocabulary
    kth_best = tf.gather(values, tf.minimum(k, candidates) - 1, batch_dims=1)
    kth_best = tf.where(uses_k, kth_best, -float("inf"))
    # Exact if no token below the candidates ties the k-th best (k > candidates never is).
    exact = ~uses_k | (last < kth_best) if candidates < vocabulary \
        else tf.ones_like(uses_k)
    in_top_k = values >= kth_best
    # log of the mass top-k keeps: the whole row without top-k.
    log_total = tf.where(
        uses_k,
        tf.reduce_logsumexp(tf.where(in_top_k, values, -float("inf")), axis=-1, keepdims=True),
        tf.reduce_logsumexp(scaled, axis=-1, keepdims=True))
    probabilities = tf.where(in_top_k, tf.exp(values - log_total), 0.0)
    # A token is kept if the tokens ranked above it hold less than p.
    mass_above = tf.cumsum(probabilities, axis=-1, exclusive=True)
    kept = tf.reduce_sum(tf.cast((mass_above < p) & in_top_k, tf.int32), axis=-1, keepdims=True)
    nucleus_end = tf.gather(values, tf.maximum(kept[:, 0], 1) - 1, batch_dims=1)[:, None]
    uses_p = p < 1.0
    threshold = tf.where(uses_p, tf.maximum(nucleus_end, kth_best), kth_best)
    # The nucleus ends inside the candidates, or top-k cuts it there anyway.
    exact &= ~uses_p | (kept < candidates) | (uses_k & (kth_best > last))
    return threshold, exact


def _hash32(x):
    """A 32-bit integer hash (Wellons' "lowbias32"): every input bit moves every output bit."""
    for shift, multiplier in ((16, 0x7FEB352D), (15, 0x846CA68B)):
        x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(shift, tf.uint32)))
        x = x * tf.constant(multiplier, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def row_gumbel_noise(seed, vocabulary):
    """Gumbel noise `(batch, vocabulary)` whose row i is a function of `seed[i]` `(2,)` alone.

    A counter-based hash of (row seed, token index) in uint32 ops: one
    vectorised op for the whole batch (a stateless random op takes one seed
    per call, which made a loop of `batch` draws), and a row's noise does not
    depend on its neighbours or its place in the batch. `argmax(logits +
    noise)` is a draw from `softmax(logits)` (the Gumbel-max trick). Equal up
    to float rounding: the logarithms' vectorised and scalar code paths may
    differ in the last bit, as the model's logits do between batch sizes.

    >>> import numpy as np
    >>> noise = row_gumbel_noise(tf.constant([[1, 5], [2, 5]]), 4)
    >>> np.allclose(row_gumbel_noise(tf.constant([[2, 5]]), 4), noise[1:], rtol=1e-6)
    True
    """
    seed = tf.bitcast(tf.cast(seed, tf.int32), tf.uint32)
    row = _hash32(tf.bitwise.bitwise_xor(_hash32(seed[:, 0]), seed[:, 1]))[:, None]  # (batch, 1)
    index = _hash32(tf.cast(tf.range(vocabulary), tf.uint32) + tf.constant(0x9E3779B9, tf.uint32))
    bits = _hash32(tf.bitwise.bitwise_xor(row, index[None]))
    # 24 bits -> a uniform in (0, 1), never 0 or 1 (both would give infinities).
    uniform = (tf.cast(tf.bitwise.right_shift(bits, tf.constant(8, tf.uint32)), tf.float32)
               + 0.5) * 2.0**-24
    return -tf.math.log(-tf.math.log(uniform))


def tensor_sampler(temperature, top_k, top_p):
    """A `select(logits, seed)` whose options are tensors (an exported signature's inputs).

    Each option is a scalar (every row) or a `(batch,)` vector (one value per
    row: a server's batch of unrelated requests). `temperature <= 0` is
    greedy; `top_k <= 0` and `top_p >= 1` switch those filters off. The
    sampler classes above take Python numbers instead, so XLA sees a fixed `k`.

    `seed` is `(2,)` (one seed for the batch) or `(batch, 2)`: one seed per
    row, and then a row's draw depends on its own seed and logits only, not
    on the other rows of the batch or its place in it (a Gumbel-max draw,
    `row_gumbel_noise`).

    A server's step runs this once per token for its whole batch, and for a
    small model it cost as much as the model; so work no row needs is
    skipped (`tf.cond`): all of it when every row is greedy, the filters when
    no row uses them, the full sort unless a row's filters reach past the
    `CANDIDATES` best tokens. Each row's result is the same whichever ran.

    Example:
    >>> import tensorflow as tf
    >>> select = tensor_sampler(tf.constant([0.0, 1.0]), tf.constant([0, 1]), tf.constant(1.0))
    >>> logits = tf.constant([[0.0, 5.0, 1.0], [0.0, 1.0, 5.0]])
    >>> select(logits, tf.constant([[1, 0], [2, 0]])).numpy().tolist()
    [1, 2]
    """

    def select(logits, seed):
        batch, vocabulary = logits.shape[0] or tf.shape(logits)[0], logits.shape[-1]

        def per_row(option):  # (batch, 1), whether the option is a scalar or a vector
            return tf.reshape(tf.broadcast_to(option, [batch]), [batch, 1])

        row_temperature = per_row(temperature)
        greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)

        def threshold(scaled, k, p):
            candidates = min(CANDIDATES, vocabulary)
            first, exact = _filter_threshold(scaled, k, p, candidates)
            if candidates == vocabulary:
                return first
            # Per row: a row's threshold does not depend on which branch ran.
            return tf.cond(tf.reduce_all(exact), lambda: first, lambda: tf.where(
                exact, first, _filter_threshold(scaled, k, p, vocabulary)[0]))

        def sample():
            scaled = logits / tf.maximum(row_temperature, 1e-6)
            k = per_row(top_k)
            k = tf.where(k > 0, tf.minimum(k, vocabulary), vocabulary)
            p = tf.minimum(per_row(top_p), 1.0)
            uses_filters = tf.reduce_any(k < vocabulary) | tf.reduce_any(p < 1.0)
            scaled = tf.cond(
                uses_filters,
                lambda: tf.where(scaled < threshold(scaled, k, p), -float("inf"), scaled),
                lambda: scaled)
            if seed.shape.rank == 2:
                return tf.argmax(scaled + row_gumbel_noise(seed, vocabulary), axis=-1,
                                 output_type=tf.int32)
            return tf.random.stateless_categorical(scaled, 1, seed, dtype=tf.int32)[:, 0]

        sampled = tf.cond(tf.reduce_any(row_temperature > 0), sample, lambda: greedy)
        return tf.where(row_temperature[:, 0] > 0, sampled, greedy)

    return select


_SAMPLER_CLASSES = {
    cls.name: cls for cls in (GreedySampler, Sampler, TopKSampler, TopPSampler, BeamSampler)
}
SAMPLERS = tuple(_SAMPLER_CLASSES)


def get_sampler(sampler="greedy", *, temperature=None, top_k=None, top_p=None, beam_width=None):
    """A sampler from its name and options (a `Sampler` is returned as it is).

    A sampler's options are its constructor's arguments. Options it does not
    use are an error, so that a typo like `get_sampler("top_p", top_k=5)`
    does not pass silently.
    """
    if isinstance(sampler, Sampler):
        return sampler
    if sampler not in _SAMPLER_CLASSES:
        raise UsageError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}", argument="sampler")
    options = {
        "temperature": temperature, "top_k": top_k, "top_p": top_p, "beam_width": beam_width
    }
    parameters = inspect.signature(_SAMPLER_CLASSES[sampler]).parameters
    unused = [name for name, value in options.items() if value is not None and name not in parameters]
    if unused:
        raise UsageError(f"{unused[0]} is not an option of sampler={sampler!r}")
    missing = [name for name, p in parameters.items() if p.default is p.empty and options[name] is None]
    if missing:
        raise UsageError(f"sampler={sampler!r} needs {missing[0]}", argument="sampler")
    given = {name: options[name] for name in parameters if options[name] is not None}
    return _SAMPLER_CLASSES[sampler](**given)
