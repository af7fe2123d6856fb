"""`keras-lm serve` under concurrent load: throughput, latency, time to first token.

Starts `keras-lm serve` twice on localhost (a subprocess each), batched
(`--max_batch_size=8`) and one request at a time (`--max_batch_size=1`), and
for 1, 4, 16 and 64 concurrent clients sends a fixed number of streaming
completions per client (sampled, seeded, `--max_tokens` each) through plain
HTTP. Every configuration has a time limit: requests not started by then
are not sent (and counted as such). It records requests/s, completion
tokens/s, p50/p95/p99 latency and time to first token, and errors (every
request must end in a complete answer or a clear error). Then a group of
clients hangs up mid-stream, and the script checks that their rows were
stopped (`keras_lm_cancelled_rows_total`) and that the server still answers.

    python benchmarks/serve_load.py --model_dir=saved_models/quickstart
    python benchmarks/serve_load.py --clients=1,16 --requests=2   # a quick look
    python benchmarks/serve_load.py --model=saved_models/quickstart/saved_model --temperature=0

`--model` serves an exported SavedModel (`keras-lm serve --model`) instead:
its rows share a call only when greedy or unseeded (every request here is
seeded), so `--temperature=0` shows its batching.

Without a trained model (`--model_dir` missing), a random model of the
quickstart's shape (`small` preset) is used: speed does not depend on the
weights. Prints a Markdown table for BENCHMARKS.md. The clients share the
machine's cores with the server, as they would on one host.
"""

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from common import machine  # noqa: E402

PROMPTS = ["def ", "import os\n", "class Node:\n    ", "for i in range(", "    return ",
           "# Copyright", "if __name__ == ", "\"\"\"A module"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_model_dir():
    import keras

    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    directory = tempfile.mkdtemp(prefix="serve_load_")
    keras.utils.set_random_seed(0)
    TransformerLM.from_preset("small", vocabulary_size=259).save(
        os.path.join(directory, "model.keras"))
    ByteTokenizer().save(os.path.join(directory, "tokenizer.json"))
    return directory


class Server:
    """`keras-lm serve` in a subprocess, until the `with` block ends."""

    def __init__(self, model_flag, max_batch_size, steps_per_call):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "keras_lm.cli.main", "serve",
                        model_flag, f"--port={self.port}",
                        f"--max_batch_size={max_batch_size}", f"--steps_per_call={steps_per_call}"]

    def __enter__(self):
        start = time.monotonic()
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        while time.monotonic() - start < 900:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited with {self.process.returncode}")
            try:
                reply = httpx.get(self.url + "/health", timeout=2)
                if reply.status_code == 200:
                    self.context = reply.json()["context"]
                    self.startup_seconds = time.monotonic() - start
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise SystemExit("the server did not start in 15 minutes")

    def __exit__(self, *exc_info):
        self.process.terminate()
        self.process.wait(timeout=60)


async def one_request(client, url, body):
    """One streamed completion: (latency, time to first text, completion tokens, error)."""
    start = time.monotonic()
    first = None
    tokens = 0
    try:
        async with client.stream("POST", url + "/v1/completions", json=body) as reply:
            if reply.status_code != 200:
                return time.monotonic() - start, None, 0, f"HTTP {reply.status_code}"
            finished = False
            async for line in reply.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    return time.monotonic() - start, first, tokens, chunk["error"]["message"]
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk["choices"]:
                    if choice["text"] and first is None:
                        first = time.monotonic() - start
                    finished = finished or choice["finish_reason"] is not None
            if not finished:
                return time.monotonic() - start, first, tokens, "stream ended without a finish"
    except httpx.HTTPError as error:
        return time.monotonic() - start, first, tokens, f"{type(error).__name__}: {error}"
    return time.monotonic() - start, first, tokens, None


async def load(url, clients, requests, max_tokens, time_limit, temperature=0.8):
    """`clients` concurrent clients, `requests` each, sequentially; stops starting at the limit."""
    results = []
    deadline = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(time_limit + 60), limits=limits) as client:
        async def run_client(c):
            for r in range(requests):
                if time.monotonic() > deadline:
                    return
                body = {"prompt": PROMPTS[(c + r) % len(PROMPTS)], "max_tokens": max_tokens,
                        "temperature": temperature, "top_p": 0.95, "seed": c * 1000 + r,
                        "stream": True,
                        "stream_options": {"include_usage": True}}
                results.append(await one_request(client, url, body))

        start = time.monotonic()
        await asyncio.gather(*(run_client(c) for c in range(clients)))
        elapsed = time.monotonic() - start
    return results, elapsed


async def abandon(url, clients, max_tokens):
    """`clients` streams closed after their first event; returns how many got one."""
    async with httpx.AsyncClient(timeout=120) as client:
        async def one(c):
            body = {"prompt": PROMPTS[c % len(PROMPTS)], "max_tokens": max_tokens,
                    "temperature": 0.8, "seed": c, "stream": True}
            async with client.stream("POST", url + "/v1/completions", json=body) as reply:
                async for line in reply.aiter_lines():
                    if line.startswith("data: "):
                        return 1  # leaving the block closes the connection
            return 0

        return sum(await asyncio.gather(*(one(c) for c in range(clients))))


def metric(url, name):
    text = httpx.get(url + "/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def summary(mode, clients, planned, results, elapsed):
    done = [r for r in results if r[3] is None]
    errors = [r[3] for r in results if r[3] is not None]
    latencies = np.array([r[0] for r in done]) if done else np.array([np.nan])
    firsts = np.array([r[1] for r in done if r[1] is not None]) if done else np.array([np.nan])
    tokens = sum(r[2] for r in done)
    return dict(mode=mode, clients=clients, planned=planned, done=len(done), errors=errors,
                not_sent=planned - len(results), elapsed=elapsed,
                requests_per_second=len(done) / elapsed, tokens_per_second=tokens / elapsed,
                p50=np.percentile(latencies, 50), p95=np.percentile(latencies, 95),
                p99=np.percentile(latencies, 99), ttft50=np.percentile(firsts, 50),
                ttft95=np.percentile(firsts, 95))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", default="saved_models/quickstart")
    parser.add_argument("--model", default=None,
                        help="a SavedModel directory from `keras-lm export` (instead of --model_dir)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--max_tokens", type=int, default=64)
    parser.add_argument("--time_limit", type=float, default=120.0,
                        help="seconds per configuration after which no request starts")
    parser.add_argument("--max_batch_size", type=int, default=8)
    parser.add_argument("--steps_per_call", type=int, default=16)
    args = parser.parse_args()
    clients_list = [int(c) for c in args.clients.split(",")]
    model_dir = args.model_dir
    if args.model is None and not os.path.isfile(os.path.join(model_dir, "model.keras")):
        print(f"{model_dir} has no model.keras: using a random model of the quickstart's shape")
        model_dir = random_model_dir()
    model_flag = f"--model={args.model}" if args.model else f"--model_dir={model_dir}"
    rows, startup, abandoned = [], {}, None
    for mode, batch_size in (("batched", args.max_batch_size), ("one at a time", 1)):
        with Server(model_flag, batch_size, args.steps_per_call) as server:
            startup[mode], context = server.startup_seconds, server.context
            for clients in clients_list:
                results, elapsed = asyncio.run(
                    load(server.url, clients, args.requests, args.max_tokens, args.time_limit,
                         args.temperature))
                row = summary(mode, clients, clients * args.requests, results, elapsed)
                rows.append(row)
                print(f"{mode}, {clients} clients: {row['done']}/{row['planned']} done, "
                      f"{len(row['errors'])} errors, {row['tokens_per_second']:.0f} tokens/s",
                      file=sys.stderr, flush=True)
            if batch_size > 1:
                got = asyncio.run(abandon(server.url, 16, args.max_tokens))
                time.sleep(2)
                after = asyncio.run(load(server.url, 1, 1, 8, 60))[0]
                abandoned = dict(clients=16, got_first_event=got,
                                 cancelled_rows=metric(server.url, "keras_lm_cancelled_rows_total"),
                                 answered_after=all(r[3] is None for r in after))
    model_name = args.model_dir if model_dir == args.model_dir else "random small preset"
    if args.model:
        model_name = f"the SavedModel {args.model} (keras-lm serve --model)"
    print(f"\nMachine: {machine()}. Model: {model_name} (context {context}). Batched: "
          f"--max_batch_size={args.max_batch_size}, --steps_per_call={args.steps_per_call}. "
          f"{args.requests} streamed requests per client, max_tokens={args.max_tokens}, "
          f"temperature {args.temperature:g}, top_p 0.95; "
          f"time limit {args.time_limit:g} s per row. "
          f"Server start-up (load + compile): batched {startup['batched']:.0f} s, "
          f"one at a time {startup['one at a time']:.0f} s.\n")
    print("| server | clients | requests done | errors | not sent (time limit) | requests/s "
          "| tokens/s | p50 latency | p95 latency | p99 latency | p50 first token "
          "| p95 first token |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['clients']} | {r['done']}/{r['planned']} | {len(r['errors'])} "
              f"| {r['not_sent']} | {r['requests_per_second']:.2f} | {r['tokens_per_second']:.0f} "
              f"| {r['p50']:.2f} s | {r['p95']:.2f} s | {r['p99']:.2f} s | {r['ttft50']:.2f} s "
              f"| {r['ttft95']:.2f} s |")
    for clients in clients_list:
        pair = [r for r in rows if r["clients"] == clients]
        if len(pair) == 2 and pair[1]["tokens_per_second"] > 0:
            print(f"\n{clients} clients: batched / one at a time = "
                  f"{pair[0]['tokens_per_second'] / pair[1]['tokens_per_second']:.2f}x tokens/s",
                  end="")
    print()
    if abandoned:
        print(f"\nHang-ups: {abandoned['clients']} clients closed their stream after the first "
              f"event ({abandoned['got_first_event']} got one); rows stopped "
              f"(keras_lm_cancelled_rows_total): {abandoned['cancelled_rows']:.0f}; a request "
              f"after them was answered: {abandoned['answered_after']}.")
    errors = sorted({e for r in rows for e in r["errors"]})
    if errors:
        print("\nErrors:", *errors[:10], sep="\n- ")


if __name__ == "__main__":
    main()
