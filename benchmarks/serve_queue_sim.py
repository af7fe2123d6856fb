"""Time to first token of `serve_load.py`'s traffic, static against continuous, in decode steps.

A discrete-event model of the two decoding threads (no model, no HTTP, no
clock): `clients` closed-loop clients send `requests` streamed completions
each, with `serve_load.py`'s prompts and `max_tokens` draws (16 to what the
context leaves), and each row runs to its limit (a random model rarely ends
early). Time is counted in decode steps of the batch; every compiled call
costs `--call_overhead` steps more (Python, the copy of the cache, reading
the results back). Text reaches a client when the call that made it returns.

- static (`Engine`): the waiting rows (up to `max_batch_size`) start
  together and run until the last one ends; the first call runs until every
  row has its first token, later calls `steps_per_call` steps.
- continuous (`ContinuousEngine`): before every call the waiting rows take
  the free slots; a row joining a running batch reads its prompt in the loop
  (its first token `len(prompt) + 1` steps later; a call with a newcomer
  stops then), rows that start an idle batch are prefilled.

It says what queueing alone allows (the per-step cost does not depend on
the batch size here): e.g. with 16 clients and 8 slots half the clients
always wait for a row to end, whatever the batching.

    python benchmarks/serve_queue_sim.py --max_batch_size=8,16,32
"""

import argparse
import heapq

import numpy as np

from serve_load import PROMPTS, request_lengths


class Client:
    def __init__(self, index, lengths, requests):
        self.index, self.lengths, self.requests, self.sent = index, lengths, requests, 0

    def next_row(self, now):
        """The client's next request as a row (sent at `now`), or None when it is done."""
        if self.sent == self.requests:
            return None
        prompt = 1 + len(PROMPTS[(self.index + self.sent) % len(PROMPTS)])  # <bos> and bytes
        row = dict(client=self, sent_at=now, prompt=prompt,
                   new=self.lengths[self.index, self.sent], first=None)
        self.sent += 1
        return row


def prefill_bucket(length):
    return 1 << (length.bit_length() - 1)


def simulate_static(clients, batch_size, steps_per_call, overhead):
    now, waiting, firsts = 0.0, [c.next_row(0.0) for c in clients], []
    while waiting:
        batch, waiting = waiting[:batch_size], waiting[batch_size:]
        start = prefill_bucket(min(r["prompt"] for r in batch))
        for r in batch:
            r["todo"] = r["prompt"] - start + r["new"]  # forced prompt positions, then new ones
        steps = max(r["prompt"] for r in batch) - start + 1
        arrived = []
        while any(r["todo"] > 0 for r in batch):
            now += steps + overhead
            for r in batch:
                if r["todo"] > 0:
                    r["todo"] -= steps
                    if r["first"] is None and r["todo"] < r["new"]:
                        r["first"] = now - r["sent_at"]
                        firsts.append(r["first"])
                    if r["todo"] <= 0:
                        arrived.append(r["client"].next_row(now))
            steps = steps_per_call
        waiting += [r for r in arrived if r is not None]
    return firsts, now


def simulate_continuous(clients, batch_size, steps_per_call, overhead):
    now, waiting, live, firsts = 0.0, [c.next_row(0.0) for c in clients], [], []
    while waiting or live:
        idle = not live
        while waiting and len(live) < batch_size:
            row = waiting.pop(0)
            # Into an idle batch: prefilled; else its prompt is read in the loop.
            start = prefill_bucket(row["prompt"]) if idle else 0
            row["todo"] = row["prompt"] - start + row["new"]
            live.append(row)
        newcomers = [r["todo"] - r["new"] + 1 for r in live if r["first"] is None]
        steps = min(steps_per_call, max(newcomers)) if newcomers else steps_per_call
        now += steps + overhead
        still = []
        for r in live:
            r["todo"] -= steps
            if r["first"] is None and r["todo"] < r["new"]:
                r["first"] = now - r["sent_at"]
                firsts.append(r["first"])
            if r["todo"] > 0:
                still.append(r)
            elif (row := r["client"].next_row(now)) is not None:
                waiting.append(row)
        live = still
    return firsts, now


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--max_batch_size", default="8,16")
    parser.add_argument("--steps_per_call", type=int, default=16)
    parser.add_argument("--call_overhead", type=float, default=2.0,
                        help="steps' worth of time each compiled call costs on top")
    parser.add_argument("--repeats", type=int, default=20, help="draws of the lengths")
    args = parser.parse_args()
    print("| max_batch_size | clients | static TTFT p50 / p95 (steps) | continuous p50 / p95 "
          "| p95 static / continuous | throughput continuous / static |")
    print("|---|---|---|---|---|---|")
    for batch_size in (int(b) for b in args.max_batch_size.split(",")):
        for count in (int(c) for c in args.clients.split(",")):
            figures = {"static": [], "continuous": []}
            makespan = {"static": 0.0, "continuous": 0.0}
            for seed in range(args.repeats):
                lengths = request_lengths(count, args.requests, args.context, seed=seed)
                for mode, simulate in (("static", simulate_static),
                                       ("continuous", simulate_continuous)):
                    clients = [Client(c, lengths, args.requests) for c in range(count)]
                    firsts, end = simulate(clients, batch_size, args.steps_per_call,
                                           args.call_overhead)
                    figures[mode].append(firsts)
                    makespan[mode] += end
            stats = {mode: np.percentile(np.concatenate(f), [50, 95])
                     for mode, f in figures.items()}
            print(f"| {batch_size} | {count} | {stats['static'][0]:.0f} / {stats['static'][1]:.0f} "
                  f"| {stats['continuous'][0]:.0f} / {stats['continuous'][1]:.0f} "
                  f"| {stats['static'][1] / stats['continuous'][1]:.2f}x "
                  f"| {makespan['static'] / makespan['continuous']:.2f}x |")


if __name__ == "__main__":
    main()
