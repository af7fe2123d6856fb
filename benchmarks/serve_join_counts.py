"""What continuous batching does per request under `serve_load.py`'s traffic: counts, no clock.

Runs `keras_lm.serve.ContinuousEngine` in this process (no HTTP) with
`clients` closed-loop clients (threads) sending `requests` completions
each, with `serve_load.py`'s prompts and `max_tokens` draws, and counts
what the decoding thread did: compiled loop calls, rows joined, prefill
calls, insert calls, moves between batch-size buckets (each copies the whole
cache), and the steps per call. The counts come from wrapping `SlotBatch`'s
methods, so the script also runs against an older keras_lm (put it first
on `PYTHONPATH`), where every join was one prefill of its own.

    python benchmarks/serve_join_counts.py --max_batch_size=8,16
    PYTHONPATH=/tmp/before python benchmarks/serve_join_counts.py  # an older tree

Counts depend on arrival order (threads), not on the machine's speed: a
few percent between runs.
"""

import argparse
import collections
import os
import queue
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lm  # noqa: E402
from keras_lm.generation import TextStream, slot_batch  # noqa: E402
from keras_lm.models import TransformerLM  # noqa: E402
from keras_lm.serve.continuous_engine import ContinuousEngine  # noqa: E402
from keras_lm.generation.row_batch import RowBatch  # noqa: E402
from keras_lm.serve.engine import Engine, Sequence  # noqa: E402
from keras_lm.tokenizers import ByteTokenizer  # noqa: E402
from serve_load import PROMPTS, request_lengths  # noqa: E402


def wrap(cls, name, count):
    """Calls `count(self, *args)` before each call of `cls.name`."""
    method = getattr(cls, name)

    def wrapped(self, *args, **kwargs):
        count(self, *args)
        return method(self, *args, **kwargs)

    setattr(cls, name, wrapped)


def counting(counts):
    """Counts `SlotBatch.add/step/resize` calls, and the decode steps of both engines'
    compiled calls (`counts["clock"]`: a clock in steps, shared by the two batch kinds)."""
    wrap(slot_batch.SlotBatch, "add", lambda self, row: counts.update(["joins"]))
    wrap(slot_batch.SlotBatch, "resize", lambda self, size: counts.update(["bucket_moves"]))

    def slot_step(self, steps):
        if self.live:
            counts.update({"loop_calls": 1, "steps": steps, "rows_per_call": len(self.live)})

    wrap(slot_batch.SlotBatch, "step", slot_step)
    # The clock moves when a call returns (a request sent during a call waits for it).
    timed(slot_batch.SlotBatch, counts, lambda self: self.live, lambda self, before, steps: steps)
    timed(RowBatch, counts, lambda self: int(self._carry["position"]),
          lambda self, before, steps: int(self._carry["position"]) - before)


def timed(cls, counts, before, ran):
    """Adds the steps each `cls.step` call ran (`ran(self, before(self), steps)`) to
    `counts["clock"]`, after the call."""
    method = cls.step

    def step(self, steps):
        start = before(self)
        result = method(self, steps)
        if start or start == 0:
            counts.update({"clock": ran(self, start, steps), "calls": 1})
        return result

    cls.step = step


def run(counts, engine, clients, requests, context):
    """Closed-loop clients through `engine`; returns each request's (steps, calls) from
    submission to its first text."""
    engine.warm_up()
    counts.clear()
    lengths = request_lengths(clients, requests, context)
    firsts = []

    def client(c):
        for r in range(requests):
            done, start = queue.Queue(), (counts["clock"], counts["calls"])

            def on_event(kind, value):
                if kind == "text" and done.empty():
                    firsts.append((counts["clock"] - start[0], counts["calls"] - start[1]))
                    done.put(None)
                elif kind == "done" and done.empty():  # no text at all
                    done.put(None)
                if kind in ("done", "error"):
                    finished.put(value)

            finished = queue.Queue()
            row = engine.encode([PROMPTS[(c + r) % len(PROMPTS)]], lengths[c, r],
                                temperature=0.8, top_p=0.95, seed=c * 1000 + r)[0]
            engine.submit([Sequence(row, TextStream(engine.tokenizer), on_event)])
            finished.get(timeout=600)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.close()
    new = getattr(engine, "counts", None)  # this tree's own counts (prefill and insert calls)
    if new is not None:
        counts.update({k: new[k] for k in ("prefill_calls", "insert_calls", "read_in_loop")})
    else:  # before: every join was prefilled alone, then written with one scatter per tensor
        counts.update({"prefill_calls": counts["joins"]})
    return firsts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="16")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--max_batch_size", default="8,16")
    parser.add_argument("--steps_per_call", type=int, default=16)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--call_overhead", type=float, default=2.0,
                        help="steps' worth of time a compiled call costs on top of its steps")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_preset(args.preset, vocabulary_size=259)
    print(f"keras_lm from {os.path.dirname(keras_lm.__file__)}; random {args.preset} preset "
          f"(context {model.sequence_length}), {args.requests} requests per client, "
          f"--steps_per_call={args.steps_per_call}")
    print("| max_batch_size | clients | rows joined | prefill calls per join | insert calls "
          "| read in the loop | bucket moves | loop calls | joins per call | steps per call "
          "| rows per call |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    c = collections.Counter()
    counting(c)
    ttft = []
    for size in (int(b) for b in args.max_batch_size.split(",")):
        for clients in (int(n) for n in args.clients.split(",")):
            for kind in (ContinuousEngine, Engine):
                engine = kind(model, ByteTokenizer(), max_batch_size=size,
                              steps_per_call=args.steps_per_call)
                firsts = np.array(run(c, engine, clients, args.requests, model.sequence_length))
                cost = firsts[:, 0] + args.call_overhead * firsts[:, 1]
                ttft.append((size, clients, kind.__name__, np.percentile(cost, [50, 95]),
                             c["clock"] + args.call_overhead * c["calls"]))
                if kind is Engine:
                    continue
                calls = max(c["loop_calls"], 1)
                print(f"| {size} | {clients} | {c['joins']} "
                      f"| {c['prefill_calls'] / c['joins']:.2f} | {c['insert_calls']} "
                      f"| {c['read_in_loop']} | {c['bucket_moves']} | {c['loop_calls']} "
                      f"| {c['joins'] / calls:.2f} | {c['steps'] / calls:.1f} "
                      f"| {c['rows_per_call'] / calls:.1f} |", flush=True)
    print(f"\nTime to first text in decode steps (+ {args.call_overhead:g} per compiled call), "
          "submission to the first text event:\n")
    print("| max_batch_size | clients | engine | p50 | p95 | whole run |")
    print("|---|---|---|---|---|---|")
    for size, clients, name, (p50, p95), total in ttft:
        print(f"| {size} | {clients} | {name} | {p50:.0f} | {p95:.0f} | {total:.0f} |")


if __name__ == "__main__":
    main()
