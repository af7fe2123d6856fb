"""Induction heads as a phase change: `python docs/experiments/induction/phase_change.py`.

1-layer against 2-layer Transformers (width 32, 2 heads) on the induction task
(default `--repeat=random`: one random segment of length L/8..L/2 repeated at
a random offset in random tokens, context 64, 64 ids; `--repeat=periodic` is
the old task, solved by positional heads), the loss on the repeated tokens,
the ICL score and Olsson et al.'s head scores (prefix matching, previous
token, copying) measured every 50 steps while they train (TensorBoard:
runs/*/logs/induction). For each of `--seeds` it writes
`seed-<s>.csv`, `seed-<s>.json` and `seed-<s>.png` into --results (the runs
into --runs/seed-<s>); `docs/experiments/seeds_table.py` makes the seeds
table from the CSVs:

    python docs/experiments/induction/phase_change.py --seeds=0,1,2,3,4 --steps=3000
    python docs/experiments/seeds_table.py docs/experiments/induction/random_offset \\
        --metric=best_prefix_matching --threshold=0.5 --group=num_layers
"""

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", ".."))  # the checkout's keras_lm


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every_steps", type=int, default=50)
    parser.add_argument("--repeat", default="random", help="random or periodic")
    parser.add_argument("--sequence_length", type=int, default=64)
    parser.add_argument("--vocabulary_size", type=int, default=64)
    parser.add_argument("--num_layers", default="1,2")
    parser.add_argument("--block_length", type=int, default=None,
                        help="one block length for every sequence (default: L/8 to L/2, drawn)")
    parser.add_argument("--intermediate_dim", type=int, default=None,
                        help="MLP width (default 4 x width; 0: attention-only blocks)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--num_heads", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--model_args", default="",
                        help="more TransformerLM arguments, e.g. smear=true")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, one run each")
    parser.add_argument("--runs", default="/tmp/keras_lm_phase_change")
    parser.add_argument("--results", default=os.path.join(HERE, "random_offset"),
                        help="where seed-<s>.csv/.json/.png go")
    args = parser.parse_args()
    from keras_lm.cli.config_flags import parse_model_args
    from keras_lm.probes.phase_change import PhaseChange, run_phase_change

    os.makedirs(args.results, exist_ok=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        runs = os.path.join(args.runs, f"seed-{seed}")
        run_phase_change(PhaseChange(
            output_dir=runs, steps=args.steps, every_steps=args.every_steps, seed=seed,
            num_layers=tuple(int(n) for n in args.num_layers.split(",")), repeat=args.repeat,
            sequence_length=args.sequence_length, vocabulary_size=args.vocabulary_size,
            block_length=args.block_length, width=args.width,
            intermediate_dim=args.intermediate_dim, num_heads=args.num_heads,
            learning_rate=args.learning_rate, model_args=parse_model_args(args.model_args)))
        for name, suffix in (("results.csv", "csv"), ("results.json", "json"),
                             ("phase_change.png", "png")):
            shutil.copy(os.path.join(runs, name), os.path.join(args.results, f"seed-{seed}.{suffix}"))


if __name__ == "__main__":
    main()
