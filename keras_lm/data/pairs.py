"""Prompt -> response pairs: reading them, the validation split, packing, the built-in pairs.

A pair file is JSON Lines (`.jsonl`: one object per line) or a table with a
header row (`.csv`, `.tsv`); `prompt_key` and `response_key` name the two
fields. Each pair trains as one sequence:

    <bos> + template(prompt) + response + <eos>

with a sample weight of 1 on the response's tokens and `<eos>` and 0 on
the prompt and the padding, so the loss and the metrics count the
response only. A prompt too long for the context loses its beginning
(counted); a response that does not fit alone is an error naming its line.

Validation rows are `val_data`, or else a deterministic 10% of the rows
chosen by a hash of the row (`holds_out`): the same rows on every machine
and in every run, identical rows on the same side. `run_pairs` makes the
split again from a run's config.json, so `eval` and `export` score exactly
the run's validation rows.

The built-in pairs (`docstring_pairs`) come from the built-in corpus: a
function's signature and docstring -> its body.

Example:
>>> import tempfile
>>> from keras_lm.tokenizers import ByteTokenizer
>>> path = os.path.join(tempfile.mkdtemp(), "pairs.jsonl")
>>> _ = open(path, "w").write('{"prompt": "2+2", "response": "4"}\\n')
>>> pairs = read_pairs(path)
>>> pairs[0].prompt, pairs[0].response, pairs[0].source.endswith(":1")
('2+2', '4', True)
>>> examples = encode_pairs(pairs, ByteTokenizer(), PromptTemplate("{prompt}="), 16)
>>> examples.inputs[0].tolist(), examples.weights[0].tolist()
([257, 50, 43, 50, 61, 52], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
"""

import ast
import dataclasses
import functools
import os

import numpy as np
import tensorflow as tf

from keras_lm.data import rows
from keras_lm.data.corpora import pystdlib_files
from keras_lm.data.row_hash import row_digest
from keras_lm.data.rows import ROW_FORMATS, VALIDATION_FRACTION, read_row_file
from keras_lm.errors import UsageError
from keras_lm.prompt_template import PromptTemplate

PAIR_FORMATS = ROW_FORMATS
# Built-in pair sets (`pairs_corpus`), made from the built-in corpus.
PAIR_CORPORA = ("docstring_to_code",)


@dataclasses.dataclass(frozen=True)
class Pair:
    """One example: `prompt`, `response`, and `source` (`file:line`, for errors)."""

    prompt: str
    response: str
    source: str


def read_pairs(path, prompt_key="prompt", response_key="response", argument="data"):
    """The pairs of a `.jsonl`, `.csv` or `.tsv` file, checked; errors name `argument`.

    The file is read by `keras_lm.data.rows.read_row_file` (UTF-8, JSON
    objects, tables). Every row needs both keys with string values and a
    non-empty response.
    """
    path = os.fspath(path)
    pairs = []
    for line, row in read_row_file(path, argument, "a pair file"):
        where = f"line {line} of {path!r}"
        values = []
        for key, key_argument in ((prompt_key, "prompt_key"), (response_key, "response_key")):
            if key not in row:
                raise UsageError(f"{key_argument}: {where} has no {key!r} (its keys: "
                                 f"{', '.join(map(str, row)) or 'none'})", argument=key_argument)
            if not isinstance(row[key], str):
                raise UsageError(f"{argument}: {where}: {key!r} must be a string, got "
                                 f"{row[key]!r}", argument=argument)
            values.append(row[key])
        if not values[1]:
            raise UsageError(f"{argument}: {where} has an empty response ({response_key!r})",
                             argument=argument)
        pairs.append(Pair(values[0], values[1], f"{path}:{line}"))
    if not pairs:
        raise UsageError(f"{argument}: {path!r} holds no pairs", argument=argument)
    return pairs


def holds_out(pair, fraction=VALIDATION_FRACTION):
    """Whether `pair` is a validation row: a hash of its prompt and response.

    Example:
    >>> holds_out(Pair("a", "b", "x:1")) == holds_out(Pair("a", "b", "y:9"))
    True
    """
    return rows.holds_out((pair.prompt, pair.response), fraction)


def split_pairs(pairs, fraction=VALIDATION_FRACTION):
    """`(train, validation)` by `holds_out`; each side keeps at least one row.

    With very few rows the hash may hold out none (or all): then the row
    with the smallest (largest) hash moves, so the split stays deterministic.
    """
    if len(pairs) < 2:
        raise UsageError(f"data: {len(pairs)} pair(s): too few to hold out validation rows; "
                         "pass val_data", argument="data")
    train, validation = rows.hash_split(pairs, lambda p: (p.prompt, p.response), fraction)
    if not validation:  # the row with the smallest hash validates
        validation = [min(pairs, key=_hash_rank)]
    elif not train:  # the row with the largest hash trains
        validation.remove(max(pairs, key=_hash_rank))
    train = [p for p in pairs if p not in validation] if len(train) in (0, len(pairs)) else train
    return train, validation


def _hash_rank(pair):
    return row_digest(pair.prompt, pair.response)


@dataclasses.dataclass
class EncodedPairs:
    """Pairs as token ids: per example `inputs`, `targets` and `weights` (NumPy rows).

    `truncated` counts the prompts cut from the left to fit the context.
    """

    inputs: list
    targets: list
    weights: list
    truncated: int

    def __len__(self):
        return len(self.inputs)

    @property
    def longest(self):
        return max(len(x) for x in self.inputs)

    @property
    def response_tokens(self):
        return int(sum(w.sum() for w in self.weights))


def encode_pairs(pairs, tokenizer, template, sequence_length, argument="data"):
    """`EncodedPairs` of `pairs`: `<bos> template(prompt) response <eos>`, fitted to the context.

    A sequence's inputs hold at most `sequence_length` tokens; a longer one
    loses the beginning of its prompt (after `<bos>`). A response that does
    not fit with its `<eos>` even without a prompt is a UsageError naming
    its line.
    """
    template = template or PromptTemplate()
    prompt_ids = _encode_all(tokenizer, [template.apply(p.prompt) for p in pairs])
    response_ids = _encode_all(tokenizer, [p.response for p in pairs])
    inputs, targets, weights, truncated = [], [], [], 0
    for pair, prompt, response in zip(pairs, prompt_ids, response_ids):
        if len(response) + 1 > sequence_length:
            raise UsageError(
                f"{argument}: the response of line {pair.source.rsplit(':', 1)[-1]} of "
                f"{pair.source.rsplit(':', 1)[0]!r} is {len(response) + 1} tokens with <eos>; "
                f"the model's context holds {sequence_length} after <bos>", argument=argument)
        room = sequence_length - len(response) - 1
        if len(prompt) > room:
            prompt, truncated = prompt[len(prompt) - room:], truncated + 1
        ids = np.array([tokenizer.bos_id, *prompt, *response, tokenizer.eos_id], np.int32)
        inputs.append(ids[:-1])
        targets.append(ids[1:])
        weights.append(np.concatenate([np.zeros(len(prompt), np.float32),
                                       np.ones(len(response) + 1, np.float32)]))
    return EncodedPairs(inputs, targets, weights, truncated)


def _encode_all(tokenizer, texts):
    """Token id lists of `texts`, encoded in batches (one TensorFlow call per batch)."""
    ids = []
    for start in range(0, len(texts), 1024):
        batch = tokenizer.encode(tf.constant(texts[start:start + 1024], tf.string))
        ids += [row.tolist() for row in batch.numpy()]
    return ids


def padded_length(examples, sequence_length, multiple=8):
    """The batch width: the longest example rounded up to `multiple`, at most the context."""
    return min(sequence_length, -(-examples.longest // multiple) * multiple)


def pairs_dataset(examples, batch_size, length, pad_id, *, shuffle=False, repeat=False, seed=None):
    """`(inputs, targets, sample_weights)` batches of `EncodedPairs`, padded to `length`.

    Padding is `pad_id` with weight 0. With `repeat=True` (training) the
    examples are reshuffled every pass and the last partial batch dropped.

    Example:
    >>> examples = EncodedPairs([np.array([1, 2])], [np.array([2, 3])],
    ...                         [np.array([0.0, 1.0], np.float32)], 0)
    >>> x, y, w = next(iter(pairs_dataset(examples, 1, 4, pad_id=0)))
    >>> x.numpy().tolist(), w.numpy().tolist()
    ([[1, 2, 0, 0]], [[0.0, 1.0, 0.0, 0.0]])
    """
    def pad(rows, value, dtype):
        out = np.full((len(rows), length), value, dtype)
        for i, row in enumerate(rows):
            out[i, :len(row)] = row
        return out

    dataset = tf.data.Dataset.from_tensor_slices((
        pad(examples.inputs, pad_id, np.int32), pad(examples.targets, pad_id, np.int32),
        pad(examples.weights, 0.0, np.float32)))
    if shuffle:
        dataset = dataset.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)


def pair_windows(examples, length, count):
    """Up to `count` windows of `length + 1` tokens of the examples laid end to end.

    What export measures perplexity on for a pair run: its validation rows,
    each `<bos> prompt response <eos>` as trained, in order.
    """
    stream = np.concatenate([np.append(x, y[-1]) for x, y in zip(examples.inputs,
                                                                 examples.targets)])
    windows = [stream[i:i + length + 1] for i in range(0, len(stream) - length, length)]
    if not windows:
        raise UsageError(f"validation_files: the validation pairs hold fewer than {length + 1} "
                         "tokens", argument="validation_files")
    return np.stack(windows[:count]).astype(np.int32)


# --- the built-in pairs --------------------------------------------------------------


def docstring_pairs(max_bytes, files=None):
    """Pairs made from Python source: a function's signature and docstring -> its body.

    The rule (deterministic): every function and method, in the files in
    order (`files`, default the built-in corpus `pystdlib`), whose body has
    a docstring and at least one statement after it. The prompt is the
    source from the `def` line to the end of the docstring, the response
    the rest of the function (its lines as written, up to its last line),
    both dedented by the `def`'s column. Kept: pairs whose prompt and
    response together hold at most `max_bytes` bytes of UTF-8 (so a byte
    model of context `max_bytes + 16` reads them whole).

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.py")
    >>> _ = open(path, "w").write('def f(x):\\n    "Twice x."\\n    return 2 * x\\n')
    >>> pair = docstring_pairs(200, [path])[0]
    >>> pair.prompt, pair.response
    ('def f(x):\\n    "Twice x."', '    return 2 * x\\n')
    """
    files = tuple(files) if files is not None else tuple(pystdlib_files())
    return [p for p in _all_docstring_pairs(files)
            if len(p.prompt.encode()) + len(p.response.encode()) <= max_bytes]


@functools.lru_cache(maxsize=2)
def _all_docstring_pairs(files):
    pairs = []
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
            tree = ast.parse(source)
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
            continue  # not this interpreter's syntax, or unreadable: not a pair
        lines = source.splitlines(keepends=True)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if ast.get_docstring(node, clean=False) is None or len(node.body) < 2:
                continue
            docstring = node.body[0]
            column = node.col_offset
            prompt = _dedent(lines[node.lineno - 1:docstring.end_lineno], column).rstrip("\n")
            response = _dedent(lines[docstring.end_lineno:node.end_lineno], column)
            if response.strip():
                pairs.append(Pair(prompt, response, f"{path}:{node.lineno}"))
    return tuple(pairs)


def _dedent(lines, column):
    """`lines` joined, each without up to `column` leading spaces."""
    out = []
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        out.append(line[min(indent, column):])
    return "".join(out)


# --- a run's pairs --------------------------------------------------------------------


class RunPairs(tuple):
    """A pair run's `(train, validation)` pairs, with `split`: "given" or "hash"."""

    def __new__(cls, train, validation, split):
        self = super().__new__(cls, (train, validation))
        self.split = split
        return self

    def __getnewargs__(self):
        return (*self, self.split)


def run_pairs(data=None, val_data=None, prompt_key="prompt", response_key="response",
              validation_fraction=VALIDATION_FRACTION, pairs_corpus=None,
              pairs_corpus_max_bytes=None):
    """The `(train, validation)` pairs of a run, as fine-tuning resolves them: a `RunPairs`.

    `data` (a pair file) or else the built-in `pairs_corpus` (with its
    `pairs_corpus_max_bytes`); `val_data`, or else `split_pairs` of the rows.
    A run's config.json records these arguments, so `eval` and `export`
    split the same way.
    """
    if data:
        pairs = read_pairs(data, prompt_key, response_key, "data")
    elif pairs_corpus == "docstring_to_code":
        pairs = docstring_pairs(pairs_corpus_max_bytes)
    else:
        raise UsageError(f"data: give a pair file ({', '.join(PAIR_FORMATS)}) or a built-in "
                         f"pair set ({', '.join(PAIR_CORPORA)}), got data={data!r}, "
                         f"pairs_corpus={pairs_corpus!r}", argument="data")
    if val_data:
        return RunPairs(pairs, read_pairs(val_data, prompt_key, response_key, "val_data"),
                        "given")
    return RunPairs(*split_pairs(pairs, validation_fraction), "hash")
