"""The engine for `keras-lm serve --model=DIR`: a SavedModel from `keras-lm export`, no Keras.

The SavedModel decodes in its graph (`sample` / `sample_raw` signatures:
strings in, text out, one sampler, seed and `max_new_tokens` per call),
so this engine (the same methods as `Engine`, behind the same app) differs
where the graph cannot do what the Keras engine does:

- rows share a call only when the call gives each the text it would get
  alone: greedy rows with the same `max_tokens`, or unseeded rows with the
  same sampler settings. A seeded sampled row runs alone (the graph draws
  from one seed for its whole batch). Calls are not padded to buckets: the
  graph takes any batch size.
- the text of a row arrives whole, in one chunk, when its call ends (a
  stream sends it as one piece, then the end); a stop string cuts it
  afterwards, and a client that left is noticed between calls only.
- the same seed gives the same text on this engine, but not the text the
  Keras engine gives (the two draw their random numbers differently);
  greedy text is the same.
- `completion_tokens` counts the text's tokens as the tokenizer reads it
  back (exact for the byte and char tokenizers, unless the text ended inside
  a character).
- a conversation with earlier replies (their `<eos>`) cannot be written as
  one prompt string: chat takes one user turn (and a system message).

Token counts, the prompt-fits check and chat's template need the tokenizer:
`export` writes it into the SavedModel (`assets.extra/tokenizer.json`,
which TensorFlow Serving ignores); a SavedModel written before that uses
the run directory's `tokenizer.json` one level up.

Example (not run here: it needs an exported run):

    engine = SavedModelEngine(*load_saved_model("saved_models/quickstart/saved_model"))
"""

import dataclasses
import os
import random
import time
from collections import defaultdict

import tensorflow as tf

from keras_lm.errors import UsageError
from keras_lm.export.exported import ExportedSavedModel
from keras_lm.export.saved_model import MODEL_ASSET, RAW_SIGNATURE, TOKENIZER_ASSET
from keras_lm.generation import Row, encode_prompts
from keras_lm.prompt_template import PromptTemplate
from keras_lm.serve.engine import BatchingEngine
from keras_lm.tokenizers import TOKENIZER_FILE, load_tokenizer


def find_tokenizer(path):
    """The tokenizer of the SavedModel at `path`; a missing one is a `UsageError` on `path`."""
    for candidate in (os.path.join(path, TOKENIZER_ASSET),
                      os.path.join(os.path.dirname(os.path.abspath(path)), TOKENIZER_FILE)):
        if os.path.isfile(candidate):
            try:
                return load_tokenizer(candidate)
            except UsageError as error:
                raise UsageError(f"path: {error}", argument="path") from None
    raise UsageError(f"path: {path!r} has no {TOKENIZER_ASSET} (export it again with "
                     f"`keras-lm export`) and no {TOKENIZER_FILE} beside it", argument="path")


def load_saved_model(path):
    """`(ExportedSavedModel, tokenizer)` of the directory `path`; errors are `UsageError`s on `path`."""
    if not os.path.isdir(path):
        raise UsageError(f"path: {path!r} is not a directory (a SavedModel is one: "
                         "MODEL_DIR/saved_model after `keras-lm export`)", argument="path")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise UsageError(f"path: {path!r} is not a SavedModel (no saved_model.pb; "
                         "`keras-lm export` writes one to MODEL_DIR/saved_model)",
                         argument="path")
    tokenizer = find_tokenizer(path)
    saved_model = ExportedSavedModel(path)
    if saved_model.sequence_length is None:
        raise UsageError(f"path: {path!r} does not record the model's context (no "
                         f"{MODEL_ASSET}; export it again with `keras-lm export`)",
                         argument="path")
    return saved_model, tokenizer


class SavedModelEngine(BatchingEngine):
    """Serves a keras_lm SavedModel through its string signatures (see the module's notes).

    Args:
        saved_model: an `ExportedSavedModel` (`keras_lm.export.exported`).
        tokenizer: the tokenizer it was exported with.
        max_batch_size, batch_wait_seconds, on_batch: as `Engine`.
    """

    def __init__(self, saved_model, tokenizer, *, max_batch_size=8, batch_wait_seconds=0.01,
                 on_batch=None, max_queue=None):
        self.saved_model = saved_model
        signatures = saved_model.signatures
        # The app applies the template (as for the Keras model): the graph must not again.
        self._signature = signatures.get(RAW_SIGNATURE, signatures["sample"])
        self.template = PromptTemplate(getattr(tokenizer, "prompt_template", None))
        super().__init__(tokenizer, max_batch_size=max_batch_size,
                         batch_wait_seconds=batch_wait_seconds, on_batch=on_batch,
                         max_queue=max_queue)

    @property
    def context(self):
        return self.saved_model.sequence_length

    def warm_up(self):
        """Runs the signature once (TensorFlow optimises a graph on its first run); returns 1."""
        self._call([""], max_new_tokens=1, temperature=0.0, top_k=0, top_p=1.0, seed=0)
        return 1

    def encode(self, prompts, max_new_tokens, *, temperature=0.0, top_k=0, top_p=1.0, seed=None):
        """One `TextRow` per prompt, checked as `Engine.encode` checks them.

        A prompt given as token ids (a chat) must read back as text: it may
        not hold `<eos>` (an earlier reply), which a prompt string cannot.
        """
        ids = encode_prompts(self.tokenizer, prompts, max_new_tokens, self.context)
        rows = []
        for prompt, prompt_ids in zip(prompts, ids, strict=True):
            if not isinstance(prompt, str):
                prompt = self.tokenizer.decode_text(tf.constant(prompt_ids[1:], tf.int32))
                if [self.tokenizer.bos_id] + self.tokenizer.encode(prompt).numpy().tolist() \
                        != list(prompt_ids):
                    raise UsageError(
                        "messages: a SavedModel takes the conversation as one prompt string, "
                        "and this one has earlier replies (their <eos>) or tokens no string "
                        "gives; send one user turn, or serve the run with --model_dir",
                        argument="messages")
            rows.append(TextRow(prompt_ids, max_new_tokens, temperature, top_k, top_p, seed,
                                prompt_text=prompt))
        return rows

    def _decode(self, sequences):
        for group in _groups(sequences):
            live = [s for s in group if not s.cancelled]
            for sequence in group:
                if sequence.cancelled:
                    sequence.finish("done", "cancelled")
            if live:
                self._decode_group(live)

    def _decode_group(self, sequences):
        start = time.monotonic()
        row = sequences[0].row
        seed = row.seed if row.seed is not None else random.randrange(2**63)
        texts = self._call([s.row.prompt_text for s in sequences], row.max_new_tokens,
                           row.temperature, row.top_k, row.top_p, seed)
        for sequence, text in zip(sequences, texts, strict=True):
            tokens = self.tokenizer.encode(text).numpy().tolist()
            sequence.num_tokens = len(tokens)
            new_text = sequence.text.add(tokens) + sequence.text.finish()
            if new_text:
                sequence.on_event("text", new_text)
            ended = sequence.text.stopped or len(tokens) < sequence.row.max_new_tokens
            sequence.finish("done", "stop" if ended else "length")
        if self.on_batch is not None:
            self.on_batch(len(sequences), time.monotonic() - start,
                          sum(s.num_tokens for s in sequences))

    def _call(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        out = self._signature(
            prompts=tf.constant(prompts, tf.string),
            max_new_tokens=tf.constant(max_new_tokens, tf.int32),
            temperature=tf.constant(temperature, tf.float32),
            top_k=tf.constant(top_k, tf.int32),
            top_p=tf.constant(top_p, tf.float32),
            seed=tf.constant(seed, tf.int64),
        )["text"].numpy()
        return [text.decode("utf-8", "replace") for text in out]


def _groups(sequences):
    """Sequences that may share one call: the same settings, greedy or unseeded.

    >>> rows = [TextRow([0], 4), TextRow([0], 4), TextRow([0], 4, 1.0, seed=1),
    ...         TextRow([0], 4, 1.0, seed=1), TextRow([0], 4, 1.0), TextRow([0], 5)]
    >>> class S:
    ...     def __init__(self, row): self.row = row
    >>> [len(group) for group in _groups([S(r) for r in rows])]
    [2, 1, 1, 1, 1]
    """
    groups = defaultdict(list)
    for i, sequence in enumerate(sequences):
        row = sequence.row
        if row.temperature <= 0:  # greedy: the sampler options and the seed change nothing
            key = (row.max_new_tokens, "greedy")
        elif row.seed is None:
            key = (row.max_new_tokens, row.temperature, row.top_k, row.top_p)
        else:  # one seed draws for a whole call: a seeded row alone keeps its text its own
            key = ("alone", i)
        groups[key].append(sequence)
    return list(groups.values())


@dataclasses.dataclass(frozen=True)
class TextRow(Row):
    """A `Row` that also keeps its prompt as text (what the SavedModel's signature takes)."""

    prompt_text: str = ""
