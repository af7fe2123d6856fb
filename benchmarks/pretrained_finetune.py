"""An imported keras-hub model: the import's time, then LoRA against full fine-tuning.

Writes a random keras-hub preset (nothing is downloaded), times
`keras-lm import --preset=P --output_dir=D` as a whole command (process start
to exit, best of `--repeats`), then runs `benchmarks/lora_vs_full.py` on the
imported run: step time, peak memory and the validation response loss of
each mode, each in its own process.

    python benchmarks/pretrained_finetune.py --gpt2_small --sequence_length=256 --batch_size=4
    python benchmarks/pretrained_finetune.py --family=gemma3 --scale=4
    python benchmarks/pretrained_finetune.py --family=gpt2 --seconds=5 --repeats=1   # smoke

Prints the import times as one JSON line, then lora_vs_full's table. Run it on
an idle machine for the record.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# Shapes shared with the export benchmark (this folder is on sys.path when run).
from hub_shapes import gpt2_small, scaled_tiny

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gpt2", help="gpt2, gemma3 or llama3 (tiny)")
    parser.add_argument("--scale", type=int, default=1, help="tiny preset widths x scale")
    parser.add_argument("--gpt2_small", action="store_true", help="GPT-2 small's shape, random")
    parser.add_argument("--sequence_length", type=int, default=None,
                        help="the imported run's context (default: the preset's)")
    parser.add_argument("--seconds", type=float, default=60.0, help="training time per mode")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = tempfile.mkdtemp(prefix="pretrained_finetune_")
    preset = os.path.join(work, "preset")
    (gpt2_small() if args.gpt2_small else scaled_tiny(args.family, args.scale)).save_to_preset(
        preset)
    run_dir = os.path.join(work, "run")
    keras_lm_command = os.path.join(os.path.dirname(sys.executable), "keras-lm")
    seconds = []
    for repeat in range(args.repeats):
        target = run_dir if repeat == 0 else os.path.join(work, f"import_{repeat}")
        start = time.perf_counter()
        context = [f"--sequence_length={args.sequence_length}"] if args.sequence_length else []
        subprocess.run([keras_lm_command, "import", f"--preset={preset}", f"--output_dir={target}",
                        *context],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"model": "gpt2_small" if args.gpt2_small else f"{args.family}x{args.scale}",
                      "preset_bytes": sum(os.path.getsize(os.path.join(preset, f))
                                          for f in os.listdir(preset)),
                      "import_command_seconds": [round(s, 2) for s in seconds]}))
    sys.stdout.flush()
    subprocess.run([sys.executable, os.path.join(HERE, "lora_vs_full.py"), f"--base_dir={run_dir}",
                    f"--seconds={args.seconds}", f"--batch_size={args.batch_size}"], check=True)


if __name__ == "__main__":
    main()
