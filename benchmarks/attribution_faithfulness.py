"""Which attribution method tells the truth about the model: faithfulness, measured.

Every method of `keras_lm.interpret` (integrated gradients, gradient x
input, occlusion, SHAP, LIME) and a random baseline (normal scores, seeded)
explain held-out texts of two trained models:

- the quickstart language model's own next-token prediction (its greedy
  token) after PROMPT_BYTES-byte windows of its validation files (byte
  tokens: one per byte), one window per text, at line starts;
- the `classify_stdlib` classifier's predicted label, on its validation
  rows (`validation.jsonl` of the run).

For each text and method, with k = 1, 3, 5, 10, 20% of the prompt's tokens
(ceil, at least 1) taken in the method's order (highest score first), by
the rule every sampling method uses (removed tokens are deleted,
`keras_lm.interpret.masking`), in probabilities p of the explained target:

- comprehensiveness = p(text) - p(text without the top k) (higher: better);
- sufficiency = p(text) - p(only the top k) (lower: better);
- deletion area: the area under p(without the top f) / p(text) for f in
  0, 1, 3, 5, 10, 20%, trapezoids, divided by 0.2 (lower: better);

each averaged over the five k (ERASER's AOPC) and over the texts; then the
seconds per explanation (one method's call, the objective built once per
text) and the rank agreement (mean Spearman over texts) of each pair.
**faithfulness** = the mean over both models of (comprehensiveness +
1 - sufficiency) / 2: the issue's rule for the default method, taken
among the methods costing at most 10x integrated gradients.

    python benchmarks/attribution_faithfulness.py --lm=saved_models/quickstart \\
        --classifier=saved_models/classify_stdlib [--texts=100] [--output=FILE.json]

Prints Markdown; --output also writes every figure as JSON. The two models
can run in two processes (`--models=classifier --output=a.json`,
`--models="language model" --output=b.json`), then `--combine=a.json,b.json`.
"""

import argparse
import itertools
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from keras_lm.interpret import METHODS, spearman  # noqa: E402
from keras_lm.io_utils import write_json  # noqa: E402
from keras_lm.interpret.explain import build_objective, run_method  # noqa: E402
from keras_lm.interpret.masking import masked_logp  # noqa: E402
from keras_lm.model_dir import load_model_dir, run_files  # noqa: E402

FRACTIONS = (0.01, 0.03, 0.05, 0.10, 0.20)
PROMPT_BYTES = 48
SEED = 0


def lm_prompts(model_dir, count, prompt_bytes=PROMPT_BYTES):
    """`count` windows of `prompt_bytes` ASCII bytes at line starts of the validation files."""
    _, _, config = load_model_dir(model_dir)
    prompts = []
    for path in sorted(run_files(config)[1]):
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        chosen = 0
        for i in range(0, len(lines), 37):  # spread over the file: every 37th line start
            window = "\n".join(lines[i:i + 8])[:prompt_bytes]
            if len(window) == prompt_bytes and window.isascii() and window.strip():
                prompts.append(window)
                chosen += 1
            if chosen == math.ceil(count / 10) or len(prompts) == count:
                break
        if len(prompts) == count:
            break
    return prompts


def classifier_texts(model_dir, count):
    with open(os.path.join(model_dir, "validation.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [row["text"] for row in rows[:count]]


def top_masks(scores, fractions=FRACTIONS):
    """`(without, only)` boolean masks `(k's, tokens)`: the top k removed / kept alone."""
    count = len(scores)
    order = np.argsort(-np.asarray(scores), kind="stable")
    without, only = np.ones((len(fractions), count), bool), np.zeros((len(fractions), count), bool)
    for row, fraction in enumerate(fractions):
        top = order[:max(1, math.ceil(fraction * count))]
        without[row, top], only[row, top] = False, True
    return without, only


def faithfulness(objective, all_scores):
    """Per method: comprehensiveness, sufficiency (AOPC over k) and deletion area."""
    names = list(all_scores)
    masks = [np.ones((1, objective.stop - objective.start), bool)]
    for name in names:
        masks.extend(top_masks(all_scores[name]))
    p = np.exp(masked_logp(objective, np.concatenate(masks)))
    full, rest = p[0], p[1:].reshape(len(names), 2, len(FRACTIONS))
    result = {}
    for name, (without, only) in zip(names, rest):
        curve = np.concatenate([[1.0], without / full])
        x = np.concatenate([[0.0], FRACTIONS])
        area = float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(x)) / x[-1])
        result[name] = {"comprehensiveness": float(np.mean(full - without)),
                        "sufficiency": float(np.mean(full - only)), "deletion_area": area}
    return result


def score_model(model, tokenizer, texts, kind, rows=(), save=None):
    """Every method on every text: faithfulness, seconds and scores per text.

    `rows` are the texts already scored (a resumed run: they are skipped);
    `save(rows)` is called after each text, so an interrupted run keeps them.
    """
    rows = list(rows)
    for number, text in enumerate(texts):
        if number < len(rows):
            continue
        rng = np.random.default_rng([SEED, number])  # the same draws when resumed
        objective, _, _ = build_objective(model, text, None, None, tokenizer)
        scores, seconds = {}, {}
        for name in METHODS:
            started = time.perf_counter()
            scores[name] = run_method(name, objective, pad_id=tokenizer.pad_id, seed=SEED)[0]
            seconds[name] = time.perf_counter() - started
        scores["random"] = rng.normal(size=objective.stop - objective.start)
        rows.append({"faithfulness": faithfulness(objective, scores), "seconds": seconds,
                     "scores": {k: v.tolist() for k, v in scores.items()},
                     "tokens": int(objective.stop - objective.start), "text": text})
        if save:
            save(rows)
        if number % 10 == 0:
            print(f"  {kind}: {number + 1}/{len(texts)} texts", flush=True)
    return rows


def summarise(rows):
    names = list(rows[0]["scores"])
    summary = {}
    for name in names:
        figures = {key: float(np.mean([r["faithfulness"][name][key] for r in rows]))
                   for key in ("comprehensiveness", "sufficiency", "deletion_area")}
        if name in rows[0]["seconds"]:
            figures["seconds"] = float(np.mean([r["seconds"][name] for r in rows]))
        summary[name] = figures
    agreement = {}
    for a, b in itertools.combinations(METHODS, 2):
        rhos = [spearman(r["scores"][a], r["scores"][b]) for r in rows]
        rhos = [rho for rho in rhos if rho is not None]
        agreement[f"{a} vs {b}"] = float(np.mean(rhos)) if rhos else None
    return summary, agreement


def choose_default(summaries):
    """The most faithful method costing at most 10x integrated gradients (mean over models)."""
    faithful, cost = {}, {}
    for name in METHODS:
        faithful[name] = float(np.mean([(s[name]["comprehensiveness"] + 1
                                         - s[name]["sufficiency"]) / 2
                                        for s in summaries.values()]))
        cost[name] = float(np.mean([s[name]["seconds"] / s["integrated_gradients"]["seconds"]
                                    for s in summaries.values()]))
    eligible = [name for name in METHODS if cost[name] <= 10]
    return max(eligible, key=faithful.get), faithful, cost


def markdown(summaries, agreements, faithful, cost, default, counts):
    lines = ["| model | method | comprehensiveness (higher) | sufficiency (lower) | "
             "deletion area (lower) | s / explanation (under load) |",
             "|---|---|---:|---:|---:|---:|"]
    for model, summary in summaries.items():
        for name, s in summary.items():
            seconds = f"{s['seconds']:.3f}" if "seconds" in s else "-"
            lines.append(f"| {model} ({counts[model]} texts) | {name} | "
                         f"{s['comprehensiveness']:.4f} | {s['sufficiency']:.4f} | "
                         f"{s['deletion_area']:.4f} | {seconds} |")
    lines += ["", "| method | faithfulness (both models) | cost / integrated gradients |",
              "|---|---:|---:|"]
    lines += [f"| {name}{' (default)' if name == default else ''} | {faithful[name]:.4f} | "
              f"{cost[name]:.1f}x |" for name in METHODS]
    lines += ["", "| pair | " + " | ".join(agreements) + " |", "|---|" + "---:|" * len(agreements)]
    for pair in next(iter(agreements.values())):
        lines.append(f"| {pair} | " + " | ".join(
            "n/a" if a[pair] is None else f"{a[pair]:.3f}" for a in agreements.values()) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lm", default="saved_models/quickstart")
    parser.add_argument("--classifier", default="saved_models/classify_stdlib")
    parser.add_argument("--texts", type=int, default=100)
    parser.add_argument("--models", default="classifier,language model",
                        help="which models to score (comma-separated), e.g. to run them in "
                        "two processes, each with its own --output, then --combine")
    parser.add_argument("--combine", default=None,
                        help="comma-separated --output files of earlier runs: print their table")
    parser.add_argument("--output", default=None,
                        help="a JSON file of every figure, rewritten after each text")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run saved in --output (its texts are skipped)")
    args = parser.parse_args()
    if args.combine:
        parts = []
        for path in args.combine.split(","):
            with open(path, encoding="utf-8") as f:
                parts.append(json.load(f))
        results = {k: v for part in parts for k, v in part["rows"].items()}
    else:
        results = {}
        if args.resume and args.output and os.path.exists(args.output):
            with open(args.output, encoding="utf-8") as f:
                results = json.load(f)["rows"]
        for kind in args.models.split(","):
            model_dir = args.classifier if kind == "classifier" else args.lm
            model, tokenizer, _ = load_model_dir(model_dir)
            texts = (classifier_texts(model_dir, args.texts) if kind == "classifier"
                     else lm_prompts(model_dir, args.texts))

            def save(rows, kind=kind):
                if args.output:
                    write_json(args.output, {"rows": {**results, kind: rows}})

            results[kind] = score_model(model, tokenizer, texts, kind, results.get(kind, ()),
                                        save)
    report(results, args.output)


def report(results, output):
    summaries, agreements = {}, {}
    for kind, rows in results.items():
        summaries[kind], agreements[kind] = summarise(rows)
    counts = {kind: len(rows) for kind, rows in results.items()}
    default, faithful, cost = choose_default(summaries)
    print(markdown(summaries, agreements, faithful, cost, default, counts))
    print(f"\ndefault method by the rule: {default}")
    if output:
        write_json(output, {"summaries": summaries, "agreement": agreements,
                            "faithfulness": faithful, "cost": cost, "default": default,
                            "texts": counts, "rows": results})


if __name__ == "__main__":
    main()
