"""Structured pruning: quality against the fraction pruned, size and decode speed.

For each sparsity: `keras-lm prune`'s run without and with a short recovery
fine-tune (`keras_lm.prune.run.prune_run`), and unstructured magnitude
pruning of the same share of prunable weights (masks, quality only:
`keras_lm.prune.magnitude_prune`). Bits per byte on the run's own
validation text (as `keras-lm eval` measures it); for the base and each
structured model the float32 TFLite file's size and its decode speed
(LiteRT, one thread, greedy, after a prompt of 16 tokens; all files timed
in turn at the end, the median of 9 rounds). Prints a Markdown
table for BENCHMARKS.md and writes the plot.

    python benchmarks/prune_quality.py --model_dir=saved_models/quickstart \\
        --sparsities=0.1,0.25,0.5 --recover_steps=100 --plot=docs/pruning/quality.png
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def decode_speeds(paths, prompt, new_tokens, rounds=9):
    """`{path: tokens per second}` of greedy decoding with the LiteRT runner (one thread).

    The median of `rounds` runs per file, the files taken in turn in each
    round, so a slow spell of the machine falls on every file alike (timed
    one after the other, the same file's speed moved by 30% between runs).
    """
    from keras_lm.export.litert_runner import LiteRTRunner

    runners = {path: LiteRTRunner(path, num_threads=1) for path in paths}
    for runner in runners.values():
        runner.generate_ids(prompt, 4)  # warm-up
    seconds = {path: [] for path in paths}
    for _ in range(rounds):
        for path, runner in runners.items():
            start = time.perf_counter()
            runner.generate_ids(prompt, new_tokens)
            seconds[path].append(time.perf_counter() - start)
    return {path: new_tokens / sorted(s)[rounds // 2] for path, s in seconds.items()}


def tflite_file(model, directory, name, prompt):
    from keras_lm.export.tflite import export_tflite

    path = os.path.join(directory, f"{name}.tflite")
    export_tflite(model, path, prefill_lengths=(len(prompt),))
    return {"tflite_path": path, "tflite_bytes": os.path.getsize(path)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", default="saved_models/quickstart")
    parser.add_argument("--sparsities", default="0.1,0.25,0.5")
    parser.add_argument("--recover_steps", type=int, default=100)
    parser.add_argument("--importance_batches", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--plot", default="docs/pruning/quality.png")
    args = parser.parse_args()

    import keras_lm
    from keras_lm import data
    from keras_lm.model_dir import run_files
    from keras_lm.prune import magnitude_prune
    from keras_lm.prune.run import _bits_per_byte, prune_run

    sparsities = [float(s) for s in args.sparsities.split(",")]
    base = keras_lm.load(args.model_dir)
    tokenizer = base.tokenizer
    _, val_files = run_files(base.run_config)
    tokens_per_byte = data.tokens_per_byte(val_files, tokenizer)
    prompt = [tokenizer.bos_id] + list(tokenizer.encode("def main(argv):\n    ").numpy())[:15]
    work = tempfile.mkdtemp(prefix="prune_quality_")
    rows = [{"sparsity": 0.0, "num_parameters": base.count_params(),
             "structured": _bits_per_byte(base, tokenizer, val_files, args.batch_size,
                                          tokens_per_byte),
             **tflite_file(base, work, "base", prompt)}]
    rows[0]["recovered"] = rows[0]["magnitude"] = rows[0]["structured"]
    for sparsity in sparsities:
        started = time.time()
        output = os.path.join(work, f"pruned_{sparsity:g}")
        metrics = prune_run(args.model_dir, output, sparsity, recover_steps=args.recover_steps,
                            importance_batches=args.importance_batches,
                            batch_size=args.batch_size, verbose=0)
        recovered = keras_lm.load(output)
        masked = magnitude_prune(base, sparsity)
        rows.append({
            "sparsity": sparsity,
            "removed_share": metrics["prune"]["removed_share"],
            "num_parameters": recovered.count_params(),
            "kept": metrics["prune"]["kept"],
            "structured": metrics["pruned_val_bits_per_byte"],
            "recovered": metrics["val_bits_per_byte"],
            "magnitude": _bits_per_byte(masked, tokenizer, val_files, args.batch_size,
                                        tokens_per_byte),
            **tflite_file(recovered, work, f"pruned_{sparsity:g}", prompt),
            "seconds": time.time() - started,
        })
        print(json.dumps(rows[-1]), flush=True)
    speeds = decode_speeds([row["tflite_path"] for row in rows], prompt, args.new_tokens)
    for row in rows:
        row["decode_tokens_per_second"] = speeds[row["tflite_path"]]
    print_table(rows, args)
    write_plot(rows, args)


def print_table(rows, args):
    from common import machine

    print(f"\n{args.model_dir}, recovery {args.recover_steps} steps of {args.batch_size} "
          f"windows, importance on {args.importance_batches} batches; {machine()}\n")
    print("| pruned (asked / reached) | parameters | bits/byte structured | + recovery "
          "| magnitude masks | TFLite float32 | decode tok/s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['sparsity']:.2f} / {row.get('removed_share', 0.0):.3f} "
              f"| {row['num_parameters']:,} | {row['structured']:.3f} | {row['recovered']:.3f} "
              f"| {row['magnitude']:.3f} | {row['tflite_bytes'] / 1e6:.2f} MB "
              f"| {row['decode_tokens_per_second']:.0f} |")


def write_plot(rows, args):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    x = [row["sparsity"] for row in rows]
    for key, label in (("structured", "structured (heads, neurons)"),
                       ("recovered", f"structured + {args.recover_steps} recovery steps"),
                       ("magnitude", "unstructured magnitude (masks)")):
        axes.plot(x, [row[key] for row in rows], marker="o", label=label)
    axes.set_xlabel("share of prunable parameters removed")
    axes.set_ylabel("validation bits per byte")
    axes.set_title(f"pruning {os.path.basename(os.path.abspath(args.model_dir))}", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
    figure.savefig(args.plot)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
