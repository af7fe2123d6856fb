"""Natural text: how much context helps the quickstart model, untrained, short-trained and trained.

Scores three models of the quickstart's shape on the same validation
windows of the trained run (`keras_lm.probes.runner.run_probe`, the code of
`keras-lm probe --probe=icl_score`): the same architecture with random
weights, a short run (`keras-lm train --steps=N`, by default a fifth of the
trained run's steps: what a 1-minute clock reaches on an idle machine), and
the trained run itself. Prints the loss by position (grouped) and the ICL
score of each, and writes `--out/natural_text.json` and a plot.

    keras-lm train --output_dir=/tmp/qs_runs/quickstart          # the 5-minute run
    python docs/experiments/natural_text.py --trained=/tmp/qs_runs/quickstart \
        --out=docs/experiments/natural_text
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

# The checkout's keras_lm, not an installed one (the script's folder is sys.path[0]).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

GROUPS = [(1, 1), (2, 4), (5, 8), (9, 16), (17, 32), (33, 64), (65, 128), (129, 256)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trained", required=True, help="a trained quickstart run directory")
    parser.add_argument("--short_steps", type=int, default=None,
                        help="steps of the short run (default: a fifth of the trained run's)")
    parser.add_argument("--batches", type=int, default=16)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import keras_lm
    from keras_lm.probes.runner import run_probe

    trained_steps = json.load(open(os.path.join(args.trained, "metrics.json")))["steps"]
    short_steps = args.short_steps or max(1, trained_steps // 5)
    work = tempfile.mkdtemp(prefix="natural_text_")
    short = os.path.join(work, "short")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "keras-lm"), "train",
                    f"--output_dir={short}", f"--steps={short_steps}", "--verbose=0"], check=True)
    untrained = os.path.join(work, "untrained")
    shutil.copytree(args.trained, untrained, ignore=shutil.ignore_patterns("logs", "checkpoints"))
    model = keras_lm.load(untrained)
    random_model = type(model).from_config(model.get_config())  # the shape, fresh weights
    random_model.tokenizer = model.tokenizer
    rows = {}
    for name, directory, loaded, steps in (
            ("random weights", untrained, (random_model, model.tokenizer, model.run_config), 0),
            (f"short run ({short_steps} steps)", short, None, short_steps),
            (f"trained ({trained_steps} steps)", args.trained, None, trained_steps)):
        # The trained run's validation files for all three: the same windows.
        result = run_probe(directory, "icl_score", batches=args.batches, loaded=loaded)
        rows[name] = {"steps": steps, "icl_score": result["icl_score"],
                      "early_position": result["early_position"],
                      "late_position": result["late_position"], "losses": result["losses"]}
    write(args.out, rows)


def write(out, rows):
    """Prints the Markdown table and writes `out/natural_text.json` and `.png`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out, exist_ok=True)
    header = " | ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in GROUPS)
    print(f"| model | ICL score | {header} |")
    print("|---|---|" + "---|" * len(GROUPS))
    figure, axes = plt.subplots(figsize=(7, 4))
    for name, row in rows.items():
        losses = row["losses"]
        means = [sum(losses[a - 1:b]) / len(losses[a - 1:b]) for a, b in GROUPS if a <= len(losses)]
        print(f"| {name} | {row['icl_score']:+.3f} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
        axes.plot(range(1, len(losses) + 1), losses, label=name)
    axes.set(xscale="log", xlabel="position (bytes read)", ylabel="loss (nats per byte)",
             title="Quickstart model: loss by position")
    axes.legend()
    figure.savefig(os.path.join(out, "natural_text.png"), dpi=100, bbox_inches="tight")
    with open(os.path.join(out, "natural_text.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
