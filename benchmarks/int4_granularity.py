"""int4 channel-wise against block-wise on a trained run: the validation perplexity change.

Exports the run's `.tflite` files once per `--int4_block_size` (0 is
channel-wise) with `Run.export(formats=["tflite"], quantize=["int4"], ...)`,
the path of `keras-lm export --quantize=int4 --int4_block_size=N`, and prints
each file's size, its validation perplexity against the Keras model's on the
same windows (the run's own validation text), its teacher-forced top-1
agreement and its greedy-token agreement. Quality, not speed: it may run
while the machine is busy.

    python benchmarks/int4_granularity.py --model_dir=saved_models/quickstart
    python benchmarks/int4_granularity.py --model_dir=D --block_sizes=0,32,128
"""

import argparse
import json
import os
import shutil
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True, help="a trained run directory")
    parser.add_argument("--block_sizes", default="0,32,64,128", help="0: channel-wise")
    args = parser.parse_args()
    import keras_lm

    print(f"run: {os.path.abspath(args.model_dir)}")
    print("| int4 weights | file | perplexity (Keras) | change | top-1 agreement "
          "| greedy agreement |")
    print("|---|---|---|---|---|---|")
    for block_size in (int(b) for b in args.block_sizes.split(",")):
        work = tempfile.mkdtemp(prefix="int4_")
        try:
            run_dir = os.path.join(work, "run")
            shutil.copytree(args.model_dir, run_dir, ignore=shutil.ignore_patterns(
                "logs", "checkpoints", "backup", "saved_model", "tflite", "litertlm"))
            report = keras_lm.Run(run_dir).export(formats=["tflite"], quantize=["int4"],
                                                  int4_block_size=block_size)
            entry = report["files"]["int4"]
            figures = entry["parity"]
            name = "channel-wise" if block_size == 0 else f"block-wise {block_size}"
            print(f"| {name} ({entry['int4']['granularity']}) | {entry['size_bytes']:,} B "
                  f"| {figures['perplexity']:.3f} ({figures['keras_perplexity']:.3f}) "
                  f"| {figures['perplexity_change']:+.2%} | {figures['top1_agreement']:.3f} "
                  f"| {figures['greedy_agreement']:.3f} |", flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"block_sizes": args.block_sizes}))


if __name__ == "__main__":
    main()
