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

import keras_lm  # noqa: E402
from keras_lm.generation import TextStream, slot_batch  # noqa: E402
from keras_lm.models import TransformerLM  # noqa: E402
from keras_lm.serve.continuous_engine import ContinuousEngine  # noqa: E402
from keras_lm.serve.engine import Sequence  # noqa: E402
from keras_lm.tokenizers import ByteTokenizer  # noqa: E402
from serve_load import PROMPTS, request_lengths  # noqa: E402


def counting(counts):
    """Wraps `SlotBatch.add/step/resize` (and the old per-join prefill) to count calls."""
    cls = slot_batch.SlotBatch

    def wrap(name, count):
        method = getattr(cls, name)

        def wrapped(self, *args, **kwargs):
            count(self, *args)
            return method(self, *args, **kwargs)

        setattr(cls, name, wrapped)

    wrap("add", lambda self, row: counts.update(["joins"]))
    wrap("resize", lambda self, size: counts.update(["bucket_moves"]))

    def step(self, steps):
        counts.update({"loop_calls": 1, "steps": steps, "rows_per_call": len(self.live)})

    wrap("step", step)


def run(counts, model, clients, requests, max_batch_size, steps_per_call):
    engine = ContinuousEngine(model, ByteTokenizer(), max_batch_size=max_batch_size,
                              steps_per_call=steps_per_call)
    engine.warm_up()
    counts.clear()
    lengths = request_lengths(clients, requests, model.sequence_length)

    def client(c):
        for r in range(requests):
            done = queue.Queue()
            row = engine.encode([PROMPTS[(c + r) % len(PROMPTS)]], lengths[c, r],
                                temperature=0.8, top_p=0.95, seed=c * 1000 + r)[0]
            engine.submit([Sequence(row, TextStream(engine.tokenizer),
                                    lambda kind, value: kind == "done" and done.put(value))])
            done.get(timeout=600)

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="16")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--max_batch_size", default="8,16")
    parser.add_argument("--steps_per_call", type=int, default=16)
    parser.add_argument("--preset", default="small")
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
    for size in (int(b) for b in args.max_batch_size.split(",")):
        for clients in (int(n) for n in args.clients.split(",")):
            run(c, model, clients, args.requests, size, args.steps_per_call)
            calls = max(c["loop_calls"], 1)
            print(f"| {size} | {clients} | {c['joins']} | {c['prefill_calls'] / c['joins']:.2f} "
                  f"| {c['insert_calls']} | {c['read_in_loop']} | {c['bucket_moves']} "
                  f"| {c['loop_calls']} | {c['joins'] / calls:.2f} | {c['steps'] / calls:.1f} "
                  f"| {c['rows_per_call'] / calls:.1f} |", flush=True)


if __name__ == "__main__":
    main()
