"""Training throughput with 1 and 2 workers (tf.distribute) on this machine.

Runs `keras-lm train` as separate processes: one device (no strategy), 2
logical CPUs in one process (`mirrored`), and 2 processes on localhost ports
(`multi_worker`, TF_CONFIG), all at the same global batch. Reports training
tokens per second (LanguageModelLogs' figure: training steps only, no
validation) of the last interval, and the loss there (the runs train alike).

    python benchmarks/distributed_scaling.py --steps=40

On 2 shared CPU cores expect no speed-up: both replicas compete for the
same cores, and the replicas add all-reduces. The point is the overhead.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

from common import machine

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from conftest import write_corpus  # noqa: E402


def train(args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_lm.cli.main", "train", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
    )


def last_interval(process):
    out, err = process.communicate()
    if process.returncode:
        raise SystemExit(err[-3000:])
    line = [l for l in out.splitlines() if "tokens_per_second" in l][-1]
    figure = lambda name: float(re.search(rf"- {name}: ([0-9.]+)", line).group(1))
    return figure("tokens_per_second"), figure("loss")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--sequence_length", type=int, default=128)
    flags = parser.parse_args()
    root = tempfile.mkdtemp()
    files = write_corpus(os.path.join(root, "corpus"), num_files=6, lines=400)
    common = [
        "--recipe=tiny", f"--preset={flags.preset}", f"--sequence_length={flags.sequence_length}",
        f"--batch_size={flags.batch_size}", f"--steps={flags.steps}",
        f"--eval_interval={flags.steps // 2}", "--val_steps=1", "--sample_tokens=8",
        "--verbose=2", "--nojit_compile", "--nosamples", "--noattention_maps",
        "--noposition_loss", "--noembedding_projector", "--nohparams",
        f"--train_files={','.join(files[:5])}", f"--val_files={files[5]}",
    ]
    rows = []
    # One at a time: the machine has 2 cores.
    rows.append(("1 device (default)", 1, *last_interval(
        train([*common, f"--output_dir={root}/one"]))))
    rows.append(("2 logical CPUs, 1 process (mirrored)", 2, *last_interval(
        train([*common, "--strategy=mirrored", "--devices=CPU:0,CPU:1",
               f"--output_dir={root}/mirrored"]))))
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("localhost", 0))
    cluster = {"worker": [f"localhost:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    workers = [train([*common, "--strategy=multi_worker", f"--output_dir={root}/multi"],
                     env={"TF_CONFIG": json.dumps({"cluster": cluster,
                                                   "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    results = [last_interval(w) for w in workers]
    rows.append(("2 processes on localhost (multi_worker)", 2, *results[0]))

    print(f"Machine: {machine()}")
    print(f"Transformer {flags.preset}, global batch {flags.batch_size} x {flags.sequence_length}, "
          f"{flags.steps} steps, no XLA; figures of the last {flags.steps // 2} steps\n")
    print("| setup | replicas | tokens/s | vs 1 device | loss at the end |")
    print("|---|---|---|---|---|")
    base = rows[0][2]
    for name, replicas, speed, loss in rows:
        print(f"| {name} | {replicas} | {speed:,.0f} | {speed / base:.2f}x | {loss:.4f} |")


if __name__ == "__main__":
    main()
