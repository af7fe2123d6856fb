"""Induction heads as a phase change: `python docs/experiments/induction/phase_change.py`.

1-layer against 2-layer Transformers (width 32, 2 heads) on repeated random
blocks (context 32, 16 ids), the ICL score and Olsson et al.'s head scores
measured every 50 steps while they train (TensorBoard: runs/*/logs/induction).
Writes results.csv, results.json and phase_change.png into --results
(the runs into /tmp/keras_lm_phase_change unless --runs is given).
"""

import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", ".."))  # the checkout's keras_lm


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every_steps", type=int, default=50)
    parser.add_argument("--vocabulary_size", type=int, default=16)
    parser.add_argument("--block_length", type=int, default=None,
                        help="one block length for every sequence (default: L/8 to L/2, drawn)")
    parser.add_argument("--intermediate_dim", type=int, default=None,
                        help="MLP width (default 4 x width; 0: attention-only blocks)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--num_heads", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--runs", default="/tmp/keras_lm_phase_change")
    parser.add_argument("--results", default=os.path.join(HERE, "phase_change"), help="where the CSV, JSON and PNG are copied")
    args = parser.parse_args()
    from keras_lm.probes.phase_change import PhaseChange, run_phase_change

    run_phase_change(PhaseChange(output_dir=args.runs, steps=args.steps,
                                 every_steps=args.every_steps,
                                 vocabulary_size=args.vocabulary_size,
                                 block_length=args.block_length, width=args.width,
                                 intermediate_dim=args.intermediate_dim,
                                 num_heads=args.num_heads, learning_rate=args.learning_rate))
    os.makedirs(args.results, exist_ok=True)
    for name in ("results.csv", "results.json", "phase_change.png"):
        shutil.copy(os.path.join(args.runs, name), os.path.join(args.results, name))


if __name__ == "__main__":
    main()
