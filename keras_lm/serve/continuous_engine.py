"""The decoding thread with continuous batching: requests join the running batch.

`Engine` (static batching) decodes the rows that arrived together until the
last of them ends; a request that arrives meanwhile waits for all of them.
Here the batch keeps running (`keras_lm.generation.SlotBatch`): between two
compiled calls (`steps_per_call` tokens), the waiting rows take the free
slots all at once and start at the next call (a short prompt is read by the
loop itself, no program of its own; long prompts that join together share
one prefill and one insert), and a row that ended, hit a stop string, lost
its client or passed its deadline leaves, freeing its slot. The batch runs
in the smallest batch-size bucket that holds its rows (one compiled loop per
bucket, all compiled at start-up): it grows at once when rows join, and
shrinks only after its rows have fitted a smaller bucket for
`shrink_after_calls` calls with nobody waiting (each move copies the whole
cache; rows come and go every few calls under load). `counts` says how
often each of these happened.

Each row steps through its own positions with its own sampler, seed and
limit, so a seeded request gives the same text alone, in a batch or joining
one mid-flight. It needs a model whose `decode` takes one position per row
(`keras_lm.generation.rows_supported`); `build` falls back to `Engine` for
others.

Example:
>>> import queue
>>> from keras_lm.models import TransformerLM
>>> from keras_lm.tokenizers import ByteTokenizer
>>> engine = ContinuousEngine(TransformerLM.from_preset("tiny", vocabulary_size=259),
...                           ByteTokenizer(), max_batch_size=2)
>>> events = queue.Queue()
>>> row = engine.encode(["def "], max_new_tokens=4)[0]
>>> engine.submit([Sequence(row, TextStream(engine.tokenizer), lambda *e: events.put(e))])
>>> while (event := events.get(timeout=300))[0] == "text":
...     pass
>>> event[0], event[1] in ("stop", "length")
('done', True)
>>> engine.close()
"""

import collections
import queue
import time

from keras_lm.generation import SlotBatch, TextStream, warm_up_slots  # noqa: F401  (example)
from keras_lm.serve.engine import (Engine, Sequence, admissible, internal_error,  # noqa: F401
                                   steps_to_first_text)


class ContinuousEngine(Engine):
    """`Engine`'s interface; rows join and leave a running `SlotBatch` between calls.

    `shrink_after_calls`: calls in a row whose rows fit a smaller bucket
    (and nobody waits) before the batch moves there. Other arguments: `Engine`'s.
    """

    def __init__(self, model, tokenizer, *, shrink_after_calls=8, **options):
        self.shrink_after_calls = shrink_after_calls
        self.counts = collections.Counter()  # loop, prefill and insert calls, joins, resizes
        self._fitted_smaller = 0  # calls in a row whose rows fitted a smaller bucket
        super().__init__(model, tokenizer, **options)

    def warm_up(self):
        """Compiles the loop of every batch-size bucket; returns the number of loops."""
        return warm_up_slots(self.model, self.buckets, **self._slot_ids())

    def _slot_ids(self):
        return dict(end_id=self.special["end_id"], pad_id=self.special["pad_id"])

    def _serve_forever(self):
        self._batch, self._slots = None, {}  # slot -> Sequence
        while not self._closed.is_set():
            try:
                self._admit(block=not self._slots)
                if self._slots:
                    self._call()
            except Exception as error:  # noqa: BLE001  (a failed call must not stop the server)
                message = internal_error(self._slots.values(), error)
                for sequence in self._slots.values():
                    if not sequence.finished:
                        sequence.finish("error", message)
                self._batch, self._slots = None, {}
            self._active = len(self._slots)
        for sequence in self._slots.values():  # closing: nobody will read the rest
            if not sequence.finished:
                sequence.finish("done", "cancelled")

    def _admit(self, block):
        """Moves the waiting rows into free slots, all at once (waits for one when `block`:
        nothing runs): the batch grows once to the bucket that holds them all."""
        joining = []
        while len(self._slots) + len(joining) < self.max_batch_size:
            try:
                sequence = self._waiting.get(block=block)
            except queue.Empty:
                break
            if sequence is None:
                self._closed.set()
                break
            block = False
            if admissible(sequence):
                joining.append(sequence)
        if not joining:
            return
        needed = len(self._slots) + len(joining)
        if self._batch is None or self._batch.batch_size < needed:
            self._resize(next(size for size in self.buckets if size >= needed))
        for sequence in joining:
            self._add(sequence)

    def _add(self, sequence):
        """One row into a free slot; a failure is this row's."""
        try:
            slot = self._batch.add(sequence.row)
        except Exception as error:  # noqa: BLE001  (one bad row must not fail the others)
            sequence.finish("error", internal_error([sequence], error))
            return
        self._slots[slot] = sequence
        self._active = len(self._slots)

    def _resize(self, batch_size):
        if self._batch is None:
            self._batch = SlotBatch(self.model, batch_size, **self._slot_ids(),
                                    banned_ids=self.special["banned_ids"], counts=self.counts)
            return
        self._batch, moves = self._batch.resize(batch_size)
        self._slots = {moves[slot]: sequence for slot, sequence in self._slots.items()}
        self._fitted_smaller = 0

    def _call(self):
        """One compiled call; then each row's text, and the rows that end leave."""
        start = time.monotonic()
        batch = self._batch
        # A row that just joined gets its first token in this call (as soon as it exists),
        # and one whose first token showed no text yet, the next token or two.
        first = [steps for slot, sequence in self._slots.items()
                 if (steps := batch.steps_to_first_token(slot) or steps_to_first_text(sequence))]
        steps = min(self.steps_per_call, max(first)) if first else self.steps_per_call
        chunk = batch.step(steps)
        new_tokens = 0
        for slot, tokens in chunk.items():
            sequence = self._slots[slot]
            new_tokens += len(tokens)
            reason = sequence.deliver(tokens)
            if reason:
                batch.stop(slot)
                self._finish(sequence, reason)
            elif batch.rows[slot] is None:  # the loop ended it
                self._finish_whole(sequence, batch.ended[slot])
        self._slots = {slot: s for slot, s in self._slots.items() if not s.finished}
        self._active = len(self._slots)
        self._maybe_shrink()
        if self.on_batch is not None:
            self.on_batch(len(chunk), time.monotonic() - start, new_tokens)

    def _maybe_shrink(self):
        """Moves to a smaller bucket once the rows have fitted it for `shrink_after_calls`
        calls with nobody waiting; an empty batch goes at once (the next row that comes
        starts a batch of its own size: nothing to copy)."""
        if not self._slots:
            self._batch, self._fitted_smaller = None, 0
            return
        smaller = next(size for size in self.buckets if size >= len(self._slots))
        if smaller >= self._batch.batch_size or not self._waiting.empty():
            self._fitted_smaller = 0
            return
        self._fitted_smaller += 1
        if self._fitted_smaller >= self.shrink_after_calls:
            self._resize(smaller)
