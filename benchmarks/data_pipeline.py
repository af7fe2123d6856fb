"""The data pipeline and the four tokenizers: throughput, memory at scale, quality per second.

Three parts, each printing a Markdown table for BENCHMARKS.md:

1. `throughput`: tokens/s that `keras_lm.data.text_dataset` delivers (built-in
   corpus, 256-token windows, batch 32, shuffled) for each tokenizer, beside
   the tokens/s the `small` Transformer consumes in training (XLA, same
   vocabulary), measured in the same run. The pipeline must be >= 5x faster.
2. `memory`: peak resident memory of `keras-lm train` (the quickstart
   recipe: byte tokenizer, `small` preset, batch 8; 20 steps) on generated corpora of 100 MB and 2 GB (files of
   10 MB), and the growth from the small to the large one (<= 10% asked).
3. `quality`: validation bits per byte after the same wall-clock budget
   (`--train_minutes`, the quickstart recipe otherwise) for byte, char,
   WordPiece and SentencePiece on the built-in corpus.

    python benchmarks/data_pipeline.py --part=throughput,memory,quality [--minutes=2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from common import machine  # noqa: E402

TOKENIZERS = ("byte", "char", "wordpiece", "sentencepiece")
SEQUENCE, BATCH = 256, 32


def throughput(batches=60):
    import keras
    import tensorflow as tf

    from keras_lm import data
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import train_tokenizer

    train, _ = data.split_files(data.corpus_files("pystdlib"))
    print("| tokenizer | vocabulary | tokenizer training | pipeline tokens/s | training consumes tokens/s | ratio |")
    print("|---|---|---|---|---|---|")
    for kind in TOKENIZERS:
        start = time.perf_counter()
        tokenizer = train_tokenizer(kind, train)
        trained_in = time.perf_counter() - start
        dataset = data.text_dataset(train, tokenizer, SEQUENCE, BATCH, shuffle=True, repeat=True, seed=0)
        iterator = iter(dataset)
        for _ in range(5):  # warm-up: readers started, buffers filled
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        pipeline = batches * BATCH * SEQUENCE / (time.perf_counter() - start)

        model = TransformerLM.from_preset(
            "small", vocabulary_size=tokenizer.vocabulary_size, sequence_length=SEQUENCE,
            pad_id=tokenizer.pad_id,
        )
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), jit_compile=True)
        x, y = next(iterator)
        x, y = tf.constant(x), tf.constant(y)
        for _ in range(3):
            model.train_on_batch(x, y)
        steps = 15
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(x, y)
        consumed = steps * BATCH * SEQUENCE / (time.perf_counter() - start)
        print(f"| {kind} | {tokenizer.vocabulary_size} | {trained_in:.1f} s | {pipeline:,.0f} "
              f"| {consumed:,.0f} | {pipeline / consumed:.1f}x |", flush=True)


def write_corpus(directory, total_bytes, file_bytes=10 << 20):
    """Generated English-like text: `total_bytes` in files of `file_bytes`."""
    if os.path.isdir(directory) and sum(
        os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
    ) >= total_bytes:
        return  # written by an earlier run
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    words = np.array("the of and to in is that for it as with was on be by this are from "
                     "model token layer train data text file value return class def self".split())
    lines = []
    while sum(map(len, lines)) < 4 << 20:  # a 4 MB block, repeated with a varying header
        lines.append(" ".join(rng.choice(words, rng.integers(4, 14))) + ".\n")
    block = "".join(lines).encode()
    for i in range(max(1, total_bytes // file_bytes)):
        with open(os.path.join(directory, f"part_{i:04d}.txt"), "wb") as f:
            written = 0
            while written < file_bytes:
                header = f"# part {i} block {written}\n".encode()
                f.write(header + block)
                written += len(header) + len(block)


def peak_rss_mb(args):
    """Peak resident memory (MB) of one `keras-lm` command, via GNU time."""
    result = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-m", "keras_lm.cli.main", *args],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    line = [x for x in result.stderr.splitlines() if x.startswith("MAXRSS")][-1]
    return int(line.split()[1]) / 1024


def memory(root):
    print("| corpus | files | peak RSS of keras-lm train (20 steps) | wall time |")
    print("|---|---|---|---|")
    peaks = {}
    for name, size in (("100 MB", 100 << 20), ("2 GB", 2 << 30)):
        directory = os.path.join(root, name.replace(" ", ""))
        write_corpus(directory, size)
        start = time.perf_counter()
        peaks[name] = peak_rss_mb([
            "train", f"--train_files={directory}", "--steps=20", "--eval_interval=20",
            "--val_steps=2", "--sample_tokens=16", "--verbose=0",
            f"--output_dir={os.path.join(root, 'out_' + name.replace(' ', ''))}",
            "--noattention_maps", "--noembedding_projector", "--noposition_loss",
        ])
        files = len(os.listdir(directory))
        print(f"| {name} | {files} | {peaks[name]:,.0f} MB | {time.perf_counter() - start:.0f} s |",
              flush=True)
    growth = peaks["2 GB"] / peaks["100 MB"] - 1
    print(f"\nGrowth from 100 MB to 2 GB: {growth:+.1%}")


def quality(root, minutes):
    print(f"| tokenizer | vocabulary | validation bits/byte after {minutes} min | steps | tokens/s |")
    print("|---|---|---|---|---|")
    for kind in TOKENIZERS:
        output = os.path.join(root, f"quality_{kind}")
        result = subprocess.run(
            [sys.executable, "-m", "keras_lm.cli.main", "train", f"--tokenizer={kind}",
             f"--train_minutes={minutes}", f"--output_dir={output}", "--verbose=0",
             "--noattention_maps", "--noembedding_projector", "--noposition_loss"],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-3000:])
        metrics = json.load(open(os.path.join(output, "metrics.json")))
        config = json.load(open(os.path.join(output, "config.json")))
        seconds = 60 * minutes
        print(f"| {kind} | {config['vocabulary_size']} | {metrics['val_bits_per_byte']:.3f} "
              f"| {metrics['steps']} | {metrics['tokens_seen'] / seconds:,.0f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="throughput,memory,quality")
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--scratch", default=None, help="where corpora and runs go (big)")
    args = parser.parse_args()
    root = args.scratch or tempfile.mkdtemp(prefix="data_pipeline_")
    print(f"Machine: {machine()}\n")
    parts = args.part.split(",")
    if "throughput" in parts:
        throughput()
        print()
    if "memory" in parts:
        memory(root)
        print()
    if "quality" in parts:
        quality(root, args.minutes)


if __name__ == "__main__":
    main()
