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


def tensor_sampler(temperature, top_k, top_p):
    """A `select(logits, seed)` whose options are tensors (an exported signature's inputs).

    Each option is a scalar (every row) or a `(batch,)` vector (one value per
    row: a server's batch of unrelated requests). `temperature <= 0` is
    greedy; `top_k <= 0` and `top_p >= 1` switch those filters off. The
    sampler classes above take Python numbers instead, so XLA sees a fixed `k`.

    `seed` is `(2,)` (one seed for the batch) or `(batch, 2)`: one seed per
    row, and then a row's draw depends on its own seed and logits only, not
    on the other rows of the batch or its place in it.

    Example:
    >>> import tensorflow as tf
    >>> select = tensor_sampler(tf.constant([0.0, 1.0]), tf.constant([0, 1]), tf.constant(1.0))
    >>> logits = tf.constant([[0.0, 5.0, 1.0], [0.0, 1.0, 5.0]])
    >>> select(logits, tf.constant([[1, 0], [2, 0]])).numpy().tolist()
    [1, 2]
    """

    def select(logits, seed):
        batch, vocabulary = tf.shape(logits)[0], tf.shape(logits)[-1]

        def per_row(option):  # (batch, 1), whether the option is a scalar or a vector
            return tf.reshape(tf.broadcast_to(option, [batch]), [batch, 1])

        row_temperature = per_row(temperature)
        scaled = logits / tf.maximum(row_temperature, 1e-6)
        k = per_row(top_k)
        k = tf.where(k > 0, tf.minimum(k, vocabulary), vocabulary)
        kth_best = tf.gather(tf.sort(scaled, axis=-1, direction="DESCENDING"), k - 1, batch_dims=1)
        scaled = tf.where(scaled < kth_best, -float("inf"), scaled)
        scaled = keep_top_p(scaled, tf.minimum(per_row(top_p), 1.0))
        if seed.shape.rank == 2:
            # One draw per row with the row's own seed (a loop of `batch`
            # small draws: the model's step costs far more).
            def draw(row):
                row_logits, row_seed = row
                return tf.random.stateless_categorical(
                    row_logits[None], 1, row_seed, dtype=tf.int32)[0, 0]

            sampled = tf.map_fn(draw, (scaled, seed), fn_output_signature=tf.int32)
        else:
            sampled = tf.random.stateless_categorical(scaled, 1, seed, dtype=tf.int32)[:, 0]
        greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
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
