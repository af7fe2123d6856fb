"""The seeds table of an experiment, from the CSV each seed wrote: prints markdown.

    python docs/experiments/seeds_table.py docs/experiments/mqar/seeds/* \
        --metric=exact_match --threshold=0.95
    python docs/experiments/seeds_table.py docs/experiments/induction/random_offset \
        --metric=best_prefix_matching --threshold=0.5 --group=num_layers

Each FOLDER holds `seed-<s>.csv` (one configuration); `--group` splits a
folder by a column. See keras_lm/probes/seeds_table.py for the definitions
(median, min, fraction reaching the threshold, transition step = first
evaluation at or above --halfway, default half the threshold).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--metric", default="exact_match")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--halfway", type=float, default=None)
    parser.add_argument("--group", default=None)
    parser.add_argument("--step", default="step")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args()
    from keras_lm.errors import UsageError
    from keras_lm.io_utils import write_bytes
    from keras_lm.probes.seeds_table import seeds_table

    try:
        table = seeds_table(args.folders, args.metric, args.threshold, args.halfway,
                            args.group, args.step)
    except UsageError as error:
        print(f"seeds_table.py: {error}", file=sys.stderr)
        sys.exit(2)
    print(table, end="")
    if args.out:
        write_bytes(args.out, table.encode())


if __name__ == "__main__":
    main()
