"""Synthetic tasks for in-context learning and emergence, as seeded tf.data sources.

Four tasks, each a function of a numpy random generator that returns one
batch of sequences as a dict of `(batch, sequence_length)` int32 arrays:

- `inputs`: the token ids the model reads;
- `targets`: the next token at each position (`inputs` shifted by one);
- `answer_group`: 0 where the target is not an answer, else the number
  (1, 2, ...) of the answer it belongs to within its sequence: an addition
  result of several digits is one answer, exact match needs all of it;
- `shots` (fewshot only): how many times the answer's input was already
  shown with its label earlier in the sequence (-1 off answers).

Tasks (ids 0 .. vocabulary-1; the run's tokenizer adds specials after them):

- `induction`: with `induction_repeat="periodic"` (the default), a block of
  random tokens (length drawn per sequence in `[induction_min_length,
  induction_max_length]`) repeated to fill the sequence; answers: every
  target inside a repeat, each repeat one answer. The sequence is periodic
  within a row, so a head that attends a fixed distance back solves each
  row once it has the period, and positional heads solve it: it does not
  force an induction head. With `induction_repeat="random"`, random tokens
  in which one random segment (length drawn as above) occurs twice, the
  first occurrence and the second both at random offsets: the distance back
  varies per sequence, so only finding the earlier occurrence of the current
  token and reading the token after it (an induction head, Olsson et al.
  2022) predicts the repeat. Answers: the targets inside the second
  occurrence after its first token (one answer per sequence).
- `mqar`: multi-query associative recall as in Zoology (Arora et al. 2023):
  `mqar_num_pairs` key-value pairs at the start, keys from ids
  `[1, V/2)`, values from `[V/2, V)`, both drawn without replacement; each
  key then appears once more as a query followed by its value (the answer:
  a target; the input there is filler, as in Zoology, unless
  `mqar_show_answers`). `mqar_queries="spread"` (default) puts the queries
  at random even offsets of the rest of the sequence (Zoology draws the
  gaps from a power law; we draw them uniformly); `"after_pairs"` puts them
  right after the pairs, in a random order. `mqar_filler="random"` (default,
  Zoology's `random_non_queries=True`) fills every other position with
  random ids; `"constant"` fills them with id 0, never a key or a value
  (Zoology's `random_non_queries=False`, its figure-2 configs). Answers are
  numbered in the order of their queries. Requires V > L and 4N <= L.
- `fewshot`: in-context classification. Each sequence draws M fresh items
  from ids `[0, V - C)` and a fresh random label for each from the C label
  ids `[V - C, V)`, then shows `(item, label)` pairs in a random order, each
  item `fewshot_k + 1` times (M as large as fits). The answer is the label
  after each item; its `shots` is how many times that item was shown before
  (0 .. fewshot_k): accuracy at shots=0 is chance, above it is learning in
  context. Pairs left over at the end repeat random items and are not answers.
- `addition`: `addition_digits`-digit additions written as text tokens,
  `123+456=9750;` packed into the sequence: operands zero-padded, the sum
  with n+1 digits, least significant first when `addition_reverse` (the
  order in which carries are computed; Lee et al. 2023). The answer is the
  sum's digits. Its own 13-token vocabulary: `0`-`9`, `+`, `=`, `;`.

Example:
>>> task = Task("mqar", sequence_length=64, vocabulary_size=128, mqar_num_pairs=4)
>>> batch = task.sample(np.random.default_rng(0), batch_size=2)
>>> batch["inputs"].shape, int((batch["answer_group"] > 0).sum())
((2, 64), 8)
>>> next(iter(task_dataset(task, batch_size=2)))["targets"].shape
TensorShape([2, 64])
"""

import dataclasses

import numpy as np
import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.tokenizers import IdTokenizer

TASKS = ("induction", "mqar", "fewshot", "addition")

ADDITION_LABELS = [str(d) for d in range(10)] + ["+", "=", ";"]
PLUS, EQUALS, SEPARATOR = 10, 11, 12

INDUCTION_REPEATS = ("periodic", "random")
MQAR_QUERIES = ("spread", "after_pairs")
MQAR_FILLERS = ("random", "constant")
FILLER_ID = 0  # mqar's constant filler: keys are ids [1, V/2), values [V/2, V)

# Disjoint random streams for the splits: a validation batch is never a training one.
SPLITS = {"train": 0, "validation": 1, "test": 2}


def _check_choice(name, value, choices):
    if value not in choices:
        raise UsageError(f"{name}: expected one of {', '.join(choices)}, got {value!r}",
                         argument=name)


def _parameter(default, help):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class Task:
    """A synthetic task and its parameters; `check()` names the bad flag.

    `vocabulary_size` None means the task's default: 64 for `induction` and
    `fewshot`, the smallest power of two above `sequence_length` for `mqar`
    (which needs V > L); `addition` has its own 13 ids and takes none.
    Parameter names are the `keras-lm train` flags.
    """

    name: str
    sequence_length: int
    vocabulary_size: int = None
    # The parameters: their help is that of the `keras-lm train` flags.
    induction_min_length: int = _parameter(None, "induction: shortest repeated block "
                                           "(default L/8).")
    induction_max_length: int = _parameter(None, "induction: longest repeated block "
                                           "(default L/2).")
    induction_repeat: str = _parameter("periodic", "induction: 'periodic' (a block repeated "
                                       "to fill the sequence) or 'random' (one random segment "
                                       "twice at random offsets in random tokens: needs an "
                                       "induction head).")
    mqar_num_pairs: int = _parameter(8, "mqar: key-value pairs N (default 8; needs 4N <= L).")
    mqar_show_answers: bool = _parameter(False, "mqar: the answered values also appear as "
                                         "inputs after their queries (default false: "
                                         "Zoology's task, where they are targets only).")
    mqar_queries: str = _parameter("spread", "mqar: where the queries go: 'spread' (random "
                                   "even offsets after the pairs) or 'after_pairs' (right "
                                   "after them).")
    mqar_filler: str = _parameter("random", "mqar: the unused positions: 'random' ids or "
                                  "'constant' (id 0, never a key or value).")
    fewshot_k: int = _parameter(8, "fewshot: examples of each item, the last one unseen "
                                "(default 8).")
    fewshot_labels: int = _parameter(2, "fewshot: number of labels (default 2).")
    addition_digits: int = _parameter(3, "addition: digits of each operand (default 3).")
    addition_reverse: bool = _parameter(True, "addition: write the sum least significant "
                                        "digit first (default true).")

    def __post_init__(self):
        self.check()

    @property
    def vocabulary(self):
        """The number of task ids (the tokenizer adds its specials after them)."""
        if self.name == "addition":
            return len(ADDITION_LABELS)
        if self.vocabulary_size is not None:
            return self.vocabulary_size
        if self.name == "mqar":
            return 1 << int(self.sequence_length).bit_length()  # > L
        return 64

    @property
    def labels(self):
        """The names of the task ids (for the tokenizer)."""
        if self.name == "addition":
            return list(ADDITION_LABELS)
        return [str(i) for i in range(self.vocabulary)]

    @property
    def block_lengths(self):
        L = self.sequence_length
        return (self.induction_min_length or max(1, L // 8),
                self.induction_max_length or max(1, L // 2))

    @property
    def fewshot_items(self):
        """Items per fewshot sequence: each shown fewshot_k + 1 times."""
        return (self.sequence_length + 1) // 2 // (self.fewshot_k + 1)

    @property
    def trains_on_answers_only(self):
        """Whether the training loss counts answer positions only.

        Induction trains on every position, as a language model does (the
        first copy of the block is unpredictable and costs log V, which no
        model can lower): induction heads form from ordinary next-token
        training. The other tasks put filler between answers, which would
        drown the answers' gradient (Zoology also trains MQAR on answers).
        """
        return self.name != "induction"

    def check(self):
        """Raises `UsageError` naming the flag when no valid sequence exists."""
        if self.name not in TASKS:
            raise UsageError(f"task: unknown task {self.name!r}; choose from {', '.join(TASKS)}", argument="task")
        L, V = self.sequence_length, self.vocabulary_size
        if L is None or L < 2:
            raise UsageError(f"sequence_length must be >= 2, got {L}", argument="sequence_length")
        if self.name == "addition":
            if V is not None:
                raise UsageError(f"vocabulary_size={V}: task=addition has its own 13 ids "
                                 "(digits, +, =, ;); leave vocabulary_size out", argument="vocabulary_size")
        elif V is not None and V < 2:
            raise UsageError(f"vocabulary_size must be >= 2, got {V}", argument="vocabulary_size")
        V = self.vocabulary
        if self.name == "induction":
            low, high = self.block_lengths
            if not 1 <= low <= high:
                raise UsageError(
                    f"induction_min_length={low} must be >= 1 and <= "
                    f"induction_max_length={high}", argument="induction_min_length")
            if 2 * high > L + 1:
                raise UsageError(
                    f"induction_max_length={high}: the block must fit twice in "
                    f"sequence_length={L} + 1 tokens (at most {(L + 1) // 2})", argument="induction_max_length")
            _check_choice("induction_repeat", self.induction_repeat, INDUCTION_REPEATS)
        elif self.name == "mqar":
            n = self.mqar_num_pairs
            if n is None or n < 1:
                raise UsageError(f"mqar_num_pairs must be >= 1, got {n}", argument="mqar_num_pairs")
            if 4 * n > L:
                raise UsageError(
                    f"mqar_num_pairs={n}: MQAR needs 4N <= L, got 4*{n} > "
                    f"sequence_length={L}", argument="mqar_num_pairs")
            if V <= L:
                raise UsageError(
                    f"vocabulary_size={V}: MQAR needs V > L, got sequence_length={L}", argument="vocabulary_size")
            if n > V // 2 - 1:
                raise UsageError(
                    f"mqar_num_pairs={n}: more keys than the {V // 2 - 1} key ids of "
                    f"vocabulary_size={V}", argument="mqar_num_pairs")
            _check_choice("mqar_queries", self.mqar_queries, MQAR_QUERIES)
            _check_choice("mqar_filler", self.mqar_filler, MQAR_FILLERS)
        elif self.name == "fewshot":
            k, c = self.fewshot_k, self.fewshot_labels
            if k is None or k < 0:
                raise UsageError(f"fewshot_k must be >= 0, got {k}", argument="fewshot_k")
            if c is None or not 2 <= c < V:
                raise UsageError(f"fewshot_labels must be in [2, vocabulary_size={V}), got {c}", argument="fewshot_labels")
            if self.fewshot_items < 1:
                raise UsageError(
                    f"fewshot_k={k}: {k + 1} examples of one item need "
                    f"{2 * (k + 1)} tokens, more than sequence_length={L} + 1", argument="fewshot_k")
            if self.fewshot_items > V - c:
                raise UsageError(
                    f"vocabulary_size={V}: {self.fewshot_items} items per sequence need "
                    f"{self.fewshot_items} input ids besides the {c} labels", argument="vocabulary_size")
        elif self.name == "addition":
            n = self.addition_digits
            if n is None or n < 1:
                raise UsageError(f"addition_digits must be >= 1, got {n}", argument="addition_digits")
            if 3 * n + 4 > L + 1:
                raise UsageError(
                    f"addition_digits={n}: one problem takes {3 * n + 4} tokens, "
                    f"more than sequence_length={L} + 1", argument="addition_digits")

    def sample(self, rng, batch_size):
        """One batch: a dict of `(batch_size, sequence_length)` int32 arrays."""
        sequences, answers, shots = _SAMPLERS[self.name](self, rng, batch_size)
        # `answers[:, t]` marks token t as an answer; targets are tokens 1..L.
        inputs = sequences[:, :-1]
        if self.name == "mqar" and not self.mqar_show_answers:
            # Zoology's MQAR: an answer is a target, never an input (the next
            # input is filler). Shown, the earlier answers let a model pick
            # among the values not answered yet, a shortcut that scores
            # ~(1/N + ... + 1/1)/N (0.52 at 4 pairs) and that models of our
            # size settle on instead of learning to match keys.
            hidden = answers[:, :-1] > 0
            filler = (np.full(inputs.shape, FILLER_ID) if self.mqar_filler == "constant"
                      else rng.integers(0, self.vocabulary, size=inputs.shape))
            inputs = np.where(hidden, filler, inputs)
        batch = {
            "inputs": inputs.astype("int32"),
            "targets": sequences[:, 1:].astype("int32"),
            "answer_group": answers[:, 1:].astype("int32"),
        }
        if shots is not None:
            batch["shots"] = shots[:, 1:].astype("int32")
        return batch


def _induction(task, rng, batch_size):
    if task.induction_repeat == "random":
        return _induction_random(task, rng, batch_size)
    L, V = task.sequence_length, task.vocabulary
    low, high = task.block_lengths
    lengths = rng.integers(low, high + 1, size=(batch_size, 1))
    blocks = rng.integers(0, V, size=(batch_size, high))
    positions = np.arange(L + 1)[None, :]
    sequences = np.take_along_axis(blocks, positions % lengths, axis=1)
    # Copy number c >= 1 is answer c; the first copy (c = 0) is not an answer.
    answers = positions // lengths
    return sequences, answers, None


def _induction_random(task, rng, batch_size):
    """Random tokens; one segment of length s copied from offset a to offset b >= a + s."""
    L, V = task.sequence_length, task.vocabulary
    low, high = task.block_lengths
    sequences = rng.integers(0, V, size=(batch_size, L + 1))
    answers = np.zeros_like(sequences)
    for row in range(batch_size):
        s = int(rng.integers(low, high + 1))
        # Uniform over the (first, second) offsets with the copies apart.
        first = int(rng.integers(0, L + 2 - 2 * s))
        second = int(rng.integers(first + s, L + 2 - s))
        sequences[row, second:second + s] = sequences[row, first:first + s]
        # The copy's first token is unpredictable; the rest follow from it.
        answers[row, second + 1:second + s] = 1
    return sequences, answers, None


def _mqar(task, rng, batch_size):
    L, V, n = task.sequence_length, task.vocabulary, task.mqar_num_pairs
    if task.mqar_filler == "constant":
        sequences = np.full((batch_size, L + 1), FILLER_ID)
    else:
        sequences = rng.integers(0, V, size=(batch_size, L + 1))  # random non-queries
    answers = np.zeros_like(sequences)
    slots = (L + 1 - 2 * n) // 2  # even offsets of the query region
    for row in range(batch_size):
        keys = rng.choice(np.arange(1, V // 2), n, replace=False)
        values = rng.choice(np.arange(V // 2, V), n, replace=False)
        sequences[row, 0:2 * n:2] = keys
        sequences[row, 1:2 * n:2] = values
        if task.mqar_queries == "after_pairs":
            offsets = rng.permutation(n)  # the keys in a random order, back to back
        else:
            offsets = rng.choice(slots, n, replace=False)
        queries = 2 * n + 2 * offsets
        sequences[row, queries] = keys
        sequences[row, queries + 1] = values
        # Answer j is the j-th query in the text (exact match by query order).
        answers[row, queries + 1] = np.argsort(np.argsort(queries)) + 1
    return sequences, answers, None


def _fewshot(task, rng, batch_size):
    L, V = task.sequence_length, task.vocabulary
    k, c, m = task.fewshot_k, task.fewshot_labels, task.fewshot_items
    pairs = (L + 2) // 2  # enough pairs to cover L + 1 tokens
    sequences = np.zeros((batch_size, 2 * pairs), dtype="int64")
    answers = np.zeros_like(sequences)
    shots = np.full_like(sequences, -1)
    for row in range(batch_size):
        items = rng.choice(V - c, m, replace=False)
        labels = V - c + rng.integers(0, c, size=m)  # a fresh mapping per sequence
        order = rng.permutation(np.repeat(np.arange(m), k + 1))
        extra = rng.integers(0, m, size=pairs - len(order))
        chosen = np.concatenate([order, extra])
        sequences[row, 0::2] = items[chosen]
        sequences[row, 1::2] = labels[chosen]
        seen = np.zeros(m, dtype="int64")
        for j, item in enumerate(order):
            answers[row, 2 * j + 1] = j + 1
            shots[row, 2 * j + 1] = seen[item]
            seen[item] += 1
    return sequences[:, :L + 1], answers[:, :L + 1], shots[:, :L + 1]


def _addition(task, rng, batch_size):
    L, n = task.sequence_length, task.addition_digits
    width = 3 * n + 4  # a + b = c ;
    problems = (L + 1) // width
    sequences = np.full((batch_size, L + 1), SEPARATOR, dtype="int64")
    answers = np.zeros_like(sequences)
    a = rng.integers(0, 10 ** n, size=(batch_size, problems))
    b = rng.integers(0, 10 ** n, size=(batch_size, problems))
    a_digits, b_digits = _digits(a, n), _digits(b, n)
    c_digits = _digits(a + b, n + 1)
    if task.addition_reverse:
        c_digits = c_digits[..., ::-1]
    for p in range(problems):
        start = p * width
        sequences[:, start:start + n] = a_digits[:, p]
        sequences[:, start + n] = PLUS
        sequences[:, start + n + 1:start + 2 * n + 1] = b_digits[:, p]
        sequences[:, start + 2 * n + 1] = EQUALS
        sequences[:, start + 2 * n + 2:start + 3 * n + 3] = c_digits[:, p]
        answers[:, start + 2 * n + 2:start + 3 * n + 3] = p + 1
    return sequences, answers, None


def _digits(numbers, width):
    """`(..., width)` decimal digits, most significant first, zero-padded."""
    powers = 10 ** np.arange(width - 1, -1, -1)
    return (numbers[..., None] // powers) % 10


_SAMPLERS = {"induction": _induction, "mqar": _mqar, "fewshot": _fewshot,
             "addition": _addition}


# The tasks' own parameters (the `keras-lm train` flags of the same names,
# and `TrainConfig.task_args` keys): every field of `Task` but these three.
TASK_PARAMETERS = tuple(field.name for field in dataclasses.fields(Task)
                        if field.name not in ("name", "sequence_length", "vocabulary_size"))

def task_dataset(task, batch_size, seed=0, split="train", num_batches=None):
    """Batches of `task` as a `tf.data.Dataset` of dicts (see the module doc).

    Batch `i` of a split is a pure function of `(seed, split, i)`: the same
    arguments give the same data, on any machine. Endless unless
    `num_batches` is given.

    Example:
    >>> task = Task("addition", sequence_length=32, addition_digits=2)
    >>> ds = task_dataset(task, batch_size=4, split="validation", num_batches=3)
    >>> sum(1 for _ in ds)
    3
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")

    def batches():
        i = 0
        while num_batches is None or i < num_batches:
            yield task.sample(np.random.default_rng([seed, SPLITS[split], i]), batch_size)
            i += 1

    keys = ["inputs", "targets", "answer_group"] + (["shots"] if task.name == "fewshot" else [])
    spec = tf.TensorSpec((batch_size, task.sequence_length), tf.int32)
    dataset = tf.data.Dataset.from_generator(batches, output_signature={key: spec for key in keys})
    # A generator's length is unknown to tf.data; Keras then warns that a
    # finite one "ran out of data". State it.
    length = tf.data.INFINITE_CARDINALITY if num_batches is None else num_batches
    return dataset.apply(tf.data.experimental.assert_cardinality(length)).prefetch(2)


def training_pairs(dataset, task, pad_id):
    """`(inputs, targets)` for `model.fit`: targets off the loss set to `pad_id`.

    The models' default loss and metrics ignore `pad_id`, so the training
    loss and Keras' `accuracy` count the answer positions only (all
    positions for induction; see `Task.trains_on_answers_only`).
    """
    def pair(batch):
        targets = batch["targets"]
        if task.trains_on_answers_only:
            targets = tf.where(batch["answer_group"] > 0, targets, pad_id)
        return batch["inputs"], targets

    return dataset.map(pair)


def task_tokenizer(task):
    """The run's tokenizer: the task's ids by name, then the special ids."""
    return IdTokenizer(labels=task.labels)
