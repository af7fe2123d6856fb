"""`keras-lm serve` under concurrent load: continuous against static batching.

Starts `keras-lm serve` on localhost once per mode (a subprocess each,
with the server's default `--max_batch_size` and `--steps_per_call`, what
a user gets, unless given here: the same for every mode):
`--batching=continuous` (a request joins the running batch at its next
compiled call) and `--batching=static` (the rows that arrived together
decode until the last one ends); `one_at_a_time` (static,
`--max_batch_size=1`) may be added with `--modes`. Each client sends its
next request when the last one is answered; both engines answer a row as
soon as it has all its tokens, so under static batching the next request
waits for the running batch to end (in its time to first text), as a
request arriving on its own would. For 1, 4, 16
and 64 concurrent clients it sends a fixed number of streaming completions
per client (sampled, seeded) through plain HTTP. Request lengths are mixed,
as real traffic's are: each request's `max_tokens` is drawn between 16 and
what the context leaves after its prompt (`--max_tokens=N` fixes it; the
same draws in every mode). Every configuration has a time limit: requests
not started by then are not sent. It records time to first text
p50/p95/p99, tokens/s, requests/s, latency, errors (an HTTP error or an
error event) and lost requests (planned but with no complete answer and no
error: not sent in time, or a stream that ended without a finish). Then a
group of clients hangs up mid-stream, and the script checks that their rows
were stopped (`keras_lm_cancelled_rows_total`) and that the server still
answers. For continuous batching it also prints the server's work per
configuration (`keras_lm_decoding_events`: rows joined, prompts read in the
loop, prefill and insert calls, moves between batch-size buckets, calls).

    python benchmarks/serve_load.py --model_dir=saved_models/quickstart
    python benchmarks/serve_load.py --clients=1,16 --requests=2   # a quick look
    python benchmarks/serve_load.py --model=saved_models/quickstart/saved_model --temperature=0

`--model` serves an exported SavedModel (`keras-lm serve --model`) instead
(static batching only: the modes are then the same server): its rows share
a call only when greedy or unseeded (every request here is seeded), so
`--temperature=0` shows its batching.

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


def random_model_dir(preset="small"):
    import keras

    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    directory = tempfile.mkdtemp(prefix="serve_load_")
    keras.utils.set_random_seed(0)
    TransformerLM.from_preset(preset, vocabulary_size=259).save(
        os.path.join(directory, "model.keras"))
    ByteTokenizer().save(os.path.join(directory, "tokenizer.json"))
    return directory


class Server:
    """`keras-lm serve` in a subprocess, until the `with` block ends."""

    def __init__(self, model_flag, max_batch_size, steps_per_call, batching):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A queue that holds every client's request: the benchmark measures waiting, not 503s.
        # Batch size and steps per call: the server's defaults unless given.
        self.command = [sys.executable, "-m", "keras_lm.cli.main", "serve",
                        model_flag, f"--port={self.port}", f"--batching={batching}",
                        "--max_queue=4096", "--request_timeout=0"]
        self.command += [f"--{name}={value}" for name, value in (
            ("max_batch_size", max_batch_size), ("steps_per_call", steps_per_call))
            if value is not None]

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
                    self.max_batch_size = reply.json()["max_batch_size"]
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


def request_lengths(clients, requests, context, max_tokens=None, seed=0):
    """`max_tokens` of request r of client c: drawn between 16 and what the context leaves.

    The same draws for every mode (a seeded generator per client count).
    """
    rng = np.random.default_rng([seed, clients])
    lengths = {}
    for c in range(clients):
        for r in range(requests):
            room = context - 1 - len(PROMPTS[(c + r) % len(PROMPTS)])  # <bos> and bytes
            lengths[c, r] = max_tokens or int(rng.integers(min(16, room), room + 1))
    return lengths


async def load(url, clients, requests, lengths, time_limit, temperature=0.8):
    """`clients` concurrent clients, `requests` each, sequentially; stops starting at the limit."""
    results = []
    deadline = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(time_limit + 60), limits=limits) as client:
        async def run_client(c):
            for r in range(requests):
                if time.monotonic() > deadline:
                    return
                body = {"prompt": PROMPTS[(c + r) % len(PROMPTS)], "max_tokens": lengths[c, r],
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
    lost_streams = [r for r in results if r[3] == "stream ended without a finish"]
    errors = [r[3] for r in results if r[3] is not None and r not in lost_streams]
    latencies = np.array([r[0] for r in done]) if done else np.array([np.nan])
    firsts = [r[1] for r in done if r[1] is not None]
    firsts = np.array(firsts) if firsts else np.array([np.nan])
    tokens = sum(r[2] for r in done)
    return dict(mode=mode, clients=clients, planned=planned, done=len(done), errors=errors,
                not_sent=planned - len(results), lost=planned - len(done) - len(errors),
                elapsed=elapsed, requests_per_second=len(done) / elapsed,
                tokens_per_second=tokens / elapsed,
                p50=np.percentile(latencies, 50), p95=np.percentile(latencies, 95),
                p99=np.percentile(latencies, 99), ttft50=np.percentile(firsts, 50),
                ttft95=np.percentile(firsts, 95), ttft99=np.percentile(firsts, 99))


MODES = {"continuous": ("continuous", None), "static": ("static", None),
         "one_at_a_time": ("static", 1)}  # name -> (--batching, --max_batch_size or the flag's)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", default="saved_models/quickstart")
    parser.add_argument("--model", default=None,
                        help="a SavedModel directory from `keras-lm export` (instead of --model_dir)")
    parser.add_argument("--preset", default="small",
                        help="the random model's preset when --model_dir has no model")
    parser.add_argument("--modes", default="continuous,static",
                        help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    parser.add_argument("--clients", default="1,4,16,64")
    parser.add_argument("--requests", type=int, default=4, help="requests per client")
    parser.add_argument("--max_tokens", type=int, default=None,
                        help="every request's max_tokens (default: mixed, 16 to the context)")
    parser.add_argument("--time_limit", type=float, default=300.0,
                        help="seconds per configuration after which no request starts")
    parser.add_argument("--max_batch_size", type=int, default=None,
                        help="the same for every mode (default: keras-lm serve's)")
    parser.add_argument("--steps_per_call", type=int, default=None,
                        help="default: keras-lm serve's")
    args = parser.parse_args()
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"--modes: unknown {sorted(unknown)}; choose from {', '.join(MODES)}")
    return args


def decoding_events(url):
    """Continuous batching's work so far (`keras_lm_decoding_events`), by kind."""
    return {kind: metric(url, f'keras_lm_decoding_events{{kind="{kind}"}}') or 0
            for kind in ("loop_calls", "joins", "read_in_loop", "prefill_calls", "insert_calls",
                         "resizes")}


def run_mode(mode, args, model_flag, clients_list):
    """The rows of one server's table, its start-up time and context, and its hang-up check."""
    batching, batch_size = MODES[mode]
    rows, abandoned = [], None
    with Server(model_flag, batch_size or args.max_batch_size, args.steps_per_call,
                batching) as server:
        for clients in clients_list:
            lengths = request_lengths(clients, args.requests, server.context, args.max_tokens)
            before = decoding_events(server.url)
            results, elapsed = asyncio.run(
                load(server.url, clients, args.requests, lengths, args.time_limit,
                     args.temperature))
            row = summary(mode, clients, clients * args.requests, results, elapsed)
            after = decoding_events(server.url)
            row["events"] = {kind: after[kind] - before[kind] for kind in after}
            row["max_batch_size"] = server.max_batch_size
            rows.append(row)
            print(f"{mode}, {clients} clients: {row['done']}/{row['planned']} done, "
                  f"{len(row['errors'])} errors, {row['lost']} lost, "
                  f"{row['tokens_per_second']:.0f} tokens/s, p95 first text {row['ttft95']:.2f} s",
                  file=sys.stderr, flush=True)
        if server.max_batch_size > 1:
            got = asyncio.run(abandon(server.url, 16, min(64, server.context // 2)))
            time.sleep(2)
            after = asyncio.run(load(server.url, 1, 1, {(0, 0): 8}, 60))[0]
            abandoned = dict(clients=16, got_first_event=got,
                             cancelled_rows=metric(server.url, "keras_lm_cancelled_rows_total"),
                             answered_after=all(r[3] is None for r in after))
        return rows, server.startup_seconds, server.context, abandoned


def print_table(rows):
    print("| batching | clients | requests done | errors | lost | first text p50 | p95 | p99 "
          "| tokens/s | requests/s | latency p50 | p95 | p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['clients']} | {r['done']}/{r['planned']} | {len(r['errors'])} "
              f"| {r['lost']} | {r['ttft50']:.2f} s | {r['ttft95']:.2f} s | {r['ttft99']:.2f} s "
              f"| {r['tokens_per_second']:.0f} | {r['requests_per_second']:.2f} "
              f"| {r['p50']:.2f} s | {r['p95']:.2f} s | {r['p99']:.2f} s |")


def print_events(rows):
    """Continuous batching's work per configuration (from the server's /metrics)."""
    rows = [r for r in rows if r["events"]["loop_calls"]]
    if not rows:
        return
    print("\n| batching | clients | rows joined | read in the loop | prefill calls | insert calls "
          "| bucket moves | compiled calls | rows joined per call |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        e = r["events"]
        print(f"| {r['mode']} | {r['clients']} | {e['joins']:.0f} | {e['read_in_loop']:.0f} "
              f"| {e['prefill_calls']:.0f} | {e['insert_calls']:.0f} | {e['resizes']:.0f} "
              f"| {e['loop_calls']:.0f} | {e['joins'] / e['loop_calls']:.2f} |")


def print_ratios(rows, clients_list, modes):
    if "continuous" not in modes or "static" not in modes:
        return
    for clients in clients_list:
        by_mode = {r["mode"]: r for r in rows if r["clients"] == clients}
        new, old = by_mode["continuous"], by_mode["static"]
        print(f"\n{clients} clients: continuous / static: p95 first text "
              f"{new['ttft95']:.2f} / {old['ttft95']:.2f} s = {old['ttft95'] / new['ttft95']:.2f}x "
              f"lower; tokens/s {new['tokens_per_second'] / max(old['tokens_per_second'], 1e-9):.2f}x",
              end="")
    print()


def main():
    args = parse_args()
    clients_list = [int(c) for c in args.clients.split(",")]
    modes = args.modes.split(",")
    model_dir = args.model_dir
    if args.model is None and not os.path.isfile(os.path.join(model_dir, "model.keras")):
        print(f"{model_dir} has no model.keras: using a random model ({args.preset} preset)")
        model_dir = random_model_dir(args.preset)
    model_flag = f"--model={args.model}" if args.model else f"--model_dir={model_dir}"
    rows, startup, hangups = [], {}, {}
    for mode in modes:
        mode_rows, startup[mode], context, hangups[mode] = run_mode(mode, args, model_flag,
                                                                    clients_list)
        rows += mode_rows
    if args.model:
        model_name = f"the SavedModel {args.model} (keras-lm serve --model)"
    elif model_dir == args.model_dir:
        model_name = f"the trained model in {model_dir}"
    else:
        model_name = (f"a RANDOM model of the {args.preset} preset ({args.model_dir} has no "
                      "model.keras)")
    batch_sizes = sorted({r["max_batch_size"] for r in rows if r["mode"] != "one_at_a_time"})
    lengths = (f"max_tokens={args.max_tokens}" if args.max_tokens
               else "max_tokens drawn between 16 and the context left after the prompt")
    print(f"\nMachine: {machine()}. Model: {model_name} (context {context}). "
          f"--max_batch_size={','.join(map(str, batch_sizes))}"
          f"{'' if args.max_batch_size else ' (the default)'}, --steps_per_call="
          f"{args.steps_per_call or 'the default'}. "
          f"{args.requests} streamed requests per client, {lengths}, temperature "
          f"{args.temperature:g}, top_p 0.95; time limit {args.time_limit:g} s per row. "
          "Server start-up (load + compile): "
          + ", ".join(f"{mode} {seconds:.0f} s" for mode, seconds in startup.items()) + ".\n")
    print_table(rows)
    print_events(rows)
    print_ratios(rows, clients_list, modes)
    for mode, check in hangups.items():
        if check:
            print(f"\nHang-ups ({mode}): {check['clients']} clients closed their stream after the "
                  f"first event ({check['got_first_event']} got one); rows stopped "
                  f"(keras_lm_cancelled_rows_total): {check['cancelled_rows']:.0f}; a request "
                  f"after them was answered: {check['answered_after']}.")
    errors = sorted({e for r in rows for e in r["errors"]})
    if errors:
        print("\nErrors:", *errors[:10], sep="\n- ")


if __name__ == "__main__":
    main()
