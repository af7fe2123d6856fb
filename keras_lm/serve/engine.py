"""The decoding thread: requests that arrive together are decoded as one batch.

Every request becomes one or more `Sequence`s (a row each: a prompt times
`n`). One thread owns the model: it takes the first waiting sequence, waits
up to `batch_wait_seconds` for more (up to `max_batch_size`), pads them to
the next batch-size bucket and runs them through one compiled loop
(`keras_lm.generation.RowBatch`), `steps_per_call` tokens per call. Between
calls it hands each sequence its new text, ends the rows that have all
their tokens (their clients need not wait for the others), and stops the
rows whose text hit a stop string or whose client went away, so a finished
or abandoned row no longer holds the batch open. Sequences that arrive
meanwhile wait for the whole batch to end.

Each row carries its own sampler options, seed and token limit, and the
programs depend only on the bucket, so every program is compiled at
start-up (`Engine.warm_up`) and a request's text does not depend on the
requests it was batched with.

Example:
>>> import queue
>>> from keras_lm.models import TransformerLM
>>> from keras_lm.tokenizers import ByteTokenizer
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
>>> engine = Engine(model, ByteTokenizer(), max_batch_size=2)
>>> events = queue.Queue()
>>> row = engine.encode(["def "], max_new_tokens=4)[0]
>>> engine.submit([Sequence(row, TextStream(engine.tokenizer), lambda *e: events.put(e))])
>>> while (event := events.get(timeout=300))[0] == "text":
...     pass
>>> event[0], event[1] in ("stop", "length")
('done', True)
>>> engine.close()
"""

import logging
import queue
import threading
import time

from keras_lm.generation import Row, RowBatch, encode_prompts, special_ids, warm_up
from keras_lm.generation import TextStream  # noqa: F401  (this module's example uses it)
from keras_lm.serve.logprobs import completion_logprobs, covering_tokens

logger = logging.getLogger("keras_lm")


def batch_buckets(max_batch_size):
    """The compiled batch sizes: powers of two below `max_batch_size`, and it.

    >>> batch_buckets(8), batch_buckets(6), batch_buckets(1)
    ([1, 2, 4, 8], [1, 2, 4, 6], [1])
    """
    if not (isinstance(max_batch_size, int) and max_batch_size >= 1):
        raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size!r}")
    return sorted({1 << i for i in range(max_batch_size.bit_length()) if 1 << i < max_batch_size}
                  | {max_batch_size})


class Sequence:
    """One row in flight: its `Row`, its text so far, and where its events go.

    `on_event(kind, value)` is called from the decoding thread with
    `("text", new_text)` (zero or more times), with `logprobs` (the number of
    top tokens asked for, 0 to 5; None: none) once `("logprobs", {tokens,
    token_logprobs, top_logprobs, text_offset})` (`keras_lm.serve.logprobs`),
    then once `("done", finish_reason)` (`"stop"`: end of text or a stop string; `"length"`:
    `max_new_tokens` reached; `"cancelled"`: its client left; `"timeout"`: its
    `deadline` (a `time.monotonic()` value) passed) or `("error", message)`. Set
    `cancelled` (from any thread) when nobody waits for it any more.
    `request_id` names it in the server's log.
    """

    def __init__(self, row, text, on_event, logprobs=None, *, request_id=None, deadline=None):
        self.row = row
        self.text = text
        self.on_event = on_event
        self.logprobs = logprobs
        self.request_id = request_id
        self.deadline = deadline
        self.cancelled = False
        self.num_tokens = 0
        self.finished = False
        self.finish_reason = None

    def finish(self, kind, value):
        self.finished = True
        self.finish_reason = value if kind == "done" else "error"
        self.on_event(kind, value)

    def expired(self, now=None):
        return self.deadline is not None and (now or time.monotonic()) > self.deadline

    def deliver(self, tokens):
        """Hands the new `tokens`' text on; returns the reason to stop the row now, if any."""
        self.num_tokens += len(tokens)
        new_text = self.text.add(tokens)
        if new_text:
            self.on_event("text", new_text)
        if self.text.stopped:
            return "stop"
        if self.cancelled:
            return "cancelled"
        return "timeout" if self.expired() else None


def steps_to_first_text(sequence):
    """More steps a row needs for its first text when it has tokens but its text is held back
    (the first bytes of a character, or what may begin a stop string); else 0. Without it
    such a row would show nothing until the next whole call."""
    if sequence.finished or sequence.text.text or not sequence.num_tokens:
        return 0
    return 1 + sequence.text.hold


class QueueFull(Exception):
    """The engine's queue holds `max_queue` rows: the app answers 503."""


def internal_error(sequences, error):
    """Logs `error` with the request ids; the message a client gets (no exception text)."""
    ids = sorted({s.request_id for s in sequences if s.request_id})
    logger.error("decoding failed for %s", ", ".join(ids) or "a request", exc_info=error)
    return "the server failed while decoding this request; its log has the details"


class BatchingEngine:
    """The decoding thread and its queue: what every engine shares (the app's interface).

    A subclass says how rows are made (`encode`), how long the context is
    (`context`), what start-up compiles (`warm_up`) and how one batch of
    `Sequence`s is decoded (`_decode`); this class queues submitted
    sequences and hands them to `_decode` in batches of up to
    `max_batch_size`, from its own thread.
    """

    # Whether `Sequence.logprobs` can be served (the app answers 400 where not).
    supports_logprobs = False

    def __init__(self, tokenizer, *, max_batch_size=8, batch_wait_seconds=0.01, on_batch=None,
                 max_queue=None):
        self.tokenizer = tokenizer
        self.max_queue = max_queue
        self._active = 0
        self.buckets = batch_buckets(max_batch_size)
        self.max_batch_size = max_batch_size
        self.batch_wait_seconds = batch_wait_seconds
        self.on_batch = on_batch
        self.special = special_ids(tokenizer)
        self._waiting = queue.Queue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve_forever, name="keras_lm-decoding",
                                        daemon=True)
        self._thread.start()

    @property
    def context(self):
        raise NotImplementedError

    def warm_up(self):
        """Compiles what serving needs before the first request; returns the programs built."""
        raise NotImplementedError

    def encode(self, prompts, max_new_tokens, *, temperature=0.0, top_k=0, top_p=1.0, seed=None):
        """One `Row` per prompt; a prompt that does not fit raises `UsageError`."""
        raise NotImplementedError

    def _decode(self, sequences):
        raise NotImplementedError

    def queued(self):
        """Rows waiting for a batch."""
        return self._waiting.qsize()

    def active(self):
        """Rows being decoded now."""
        return self._active

    def submit(self, sequences):
        """Queues the sequences (thread-safe); their events come from the decoding thread.

        Raises `QueueFull` (and queues none of them) when they would make
        more than `max_queue` rows wait.
        """
        if self._closed.is_set():
            raise RuntimeError("the engine is closed")
        if self.max_queue is not None and self.queued() + len(sequences) > self.max_queue:
            raise QueueFull(f"{self.queued()} rows are waiting (--max_queue={self.max_queue})")
        for sequence in sequences:
            self._waiting.put(sequence)

    def close(self):
        """Stops the decoding thread after its current batch."""
        self._closed.set()
        self._waiting.put(None)
        self._thread.join(timeout=60)

    def _serve_forever(self):
        while not self._closed.is_set():
            batch = self._next_batch()
            if batch:
                self._active = len(batch)
                try:
                    self._decode(batch)
                except Exception as error:  # noqa: BLE001  (a bad batch must not stop the server)
                    message = internal_error(batch, error)
                    for sequence in batch:
                        if not sequence.finished:
                            sequence.finish("error", message)
                self._active = 0

    def _next_batch(self):
        """The first waiting sequence and those arriving within the wait window."""
        first = self._waiting.get()
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_seconds
        while len(batch) < self.max_batch_size:
            try:  # what is already waiting joins at once; else wait out the window
                sequence = self._waiting.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if sequence is None:
                self._closed.set()
                break
            batch.append(sequence)
        return [s for s in batch if admissible(s)]


def admissible(sequence):
    """Whether a waiting sequence should still be decoded; ends it if its client left or its
    deadline passed while it waited."""
    if sequence.cancelled:
        sequence.finish("done", "cancelled")
    elif sequence.expired():
        sequence.finish("done", "timeout")
    return not sequence.finished


class Engine(BatchingEngine):
    """Owns the Keras model; batches and decodes submitted `Sequence`s on its own thread.

    Args:
        model: a `LanguageModel` (the step API).
        tokenizer: its tokenizer.
        max_batch_size: rows decoded together at most (1: one at a time).
        batch_wait_seconds: how long the first waiting row waits for others.
        steps_per_call: tokens per compiled call (streaming granularity).
        on_batch: optional `on_batch(rows, seconds, new_tokens)`, called after each batch.
        max_queue: rows that may wait at most (`submit` raises `QueueFull`); None: no limit.
    """

    supports_logprobs = True

    def __init__(self, model, tokenizer, *, max_batch_size=8, batch_wait_seconds=0.01,
                 steps_per_call=16, on_batch=None, max_queue=None):
        self.model = model
        self.steps_per_call = steps_per_call
        super().__init__(tokenizer, max_batch_size=max_batch_size,
                         batch_wait_seconds=batch_wait_seconds, on_batch=on_batch,
                         max_queue=max_queue)

    @property
    def context(self):
        return self.model.sequence_length

    def warm_up(self):
        """Compiles every program the engine can use; returns the number of loops compiled."""
        return warm_up(self.model, self.buckets)

    def encode(self, prompts, max_new_tokens, *, temperature=0.0, top_k=0, top_p=1.0, seed=None):
        """One `Row` per prompt; a prompt that does not fit raises `UsageError` (as `generate`).

        A prompt is a text (encoded after `<bos>`) or a list of token ids
        that already starts with `<bos>` (a chat: `PromptTemplate.chat_ids`).
        """
        ids = encode_prompts(self.tokenizer, prompts, max_new_tokens, self.context)
        top_k = min(top_k, self.model.vocabulary_size)  # more than the vocabulary: all of it
        return [Row(p, max_new_tokens, temperature, top_k, top_p, seed) for p in ids]

    def _decode(self, sequences):
        start = time.monotonic()
        bucket = next(size for size in self.buckets if size >= len(sequences))
        batch = RowBatch(self.model, [s.row for s in sequences], bucket, **self.special)
        steps = batch.steps_to_first_token  # the first text as soon as it exists
        while not batch.finished:
            chunk = batch.step(steps)
            for i, (sequence, tokens) in enumerate(zip(sequences, chunk, strict=True)):
                if sequence.finished:
                    continue
                reason = sequence.deliver(tokens)
                if reason:
                    batch.stop(i)
                    self._finish(sequence, reason)
                elif batch.row_done[i]:  # its client need not wait for the others
                    self._finish_whole(sequence, batch.ended[i])
            held = max(steps_to_first_text(s) for s in sequences)
            steps = min(self.steps_per_call, held) if held else self.steps_per_call
        for i, sequence in enumerate(sequences):
            if not sequence.finished:
                self._finish_whole(sequence, batch.ended[i])
        if self.on_batch is not None:
            self.on_batch(len(sequences), time.monotonic() - start,
                          sum(s.num_tokens for s in sequences))

    def _finish_whole(self, sequence, ended):
        """Ends a row the loop finished: the rest of its text, then "stop" or "length"."""
        rest = sequence.text.finish()
        if rest:
            sequence.on_event("text", rest)
        self._finish(sequence, "stop" if ended else "length")

    def _finish(self, sequence, reason):
        """Ends `sequence`; first its logprobs, if asked for (over the tokens of its text)."""
        if sequence.logprobs is not None and reason not in ("cancelled", "timeout"):
            ids = sequence.text.ids
            if sequence.text.stopped:  # the tokens that make the text, not those past the cut
                ids = covering_tokens(self.tokenizer, ids, sequence.text.text)
            sequence.on_event("logprobs", completion_logprobs(
                self.model, self.tokenizer, sequence.row.prompt_ids, ids, sequence.logprobs,
                self.special["banned_ids"]))
        sequence.finish("done", reason)
