"""Addition's emergence over seeds: one `keras-lm sweep` per seed, its answer curve kept per seed.

Runs `keras-lm sweep --task=addition ... --score_every=100 --seed=S` for
each of `--seeds` (runs under `--runs`) and copies each run's answer curve
(`probes/answer_curves.csv`: exact match, token accuracy, edit distance and
answer log-likelihood every 100 steps) to `--out/seed-<s>.csv`, which
`docs/experiments/seeds_table.py` turns into the seeds table:

    python docs/experiments/addition/seeds.py --seeds=0,1,2,3,4 --steps=1000 \\
        --out=docs/experiments/addition/seeds/two_digits_w64
    python docs/experiments/seeds_table.py docs/experiments/addition/seeds/two_digits_w64 \\
        --metric=exact_match --threshold=0.95
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--digits", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--runs", default="/tmp/keras_lm_addition_seeds")
    parser.add_argument("--out", required=True, help="where seed-<s>.csv go")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        sweep = os.path.join(args.runs, f"seed-{seed}")
        subprocess.run(
            ["keras-lm", "sweep", "--task=addition", f"--addition_digits={args.digits}",
             "--sequence_length=64", "--model=transformer", f"--sizes={args.width}",
             f"--steps={args.steps}", "--score_every=100", f"--seed={seed}",
             f"--output_dir={sweep}"], check=True)
        (curve,) = glob.glob(os.path.join(sweep, "runs", "*", "probes", "answer_curves.csv"))
        shutil.copy(curve, os.path.join(args.out, f"seed-{seed}.csv"))
        print(f"seed {seed}: {os.path.join(args.out, f'seed-{seed}.csv')}", file=sys.stderr)


if __name__ == "__main__":
    main()
