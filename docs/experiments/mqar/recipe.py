"""MQAR recipe search: one training run of a 2-layer Transformer (or an LSTM) on MQAR.

Trains with `model.fit` on `keras_lm.data.synthetic` MQAR batches (loss on the
answers only, as `keras-lm train --task=mqar` does), evaluates exact match and
exact match by query order every `--eval_every` steps on the test stream, and
appends one row per evaluation to `--csv`. Used to find what makes MQAR learn
(see docs/experiments.md, "MQAR: the recipe").

With `--seeds=0,1,2,3,4` and `--out=DIR` it trains one model per seed and
writes `DIR/seed-<s>.csv` for each (rows as above); `docs/experiments/
seeds_table.py DIR` turns them into the seeds table. `--queries` and
`--filler` choose the task's layout (`Task("mqar", mqar_queries=...,
mqar_filler=...)`).

    python docs/experiments/mqar/recipe.py --name=spread-random --sequence_length=64 --pairs=4 \
        --vocab=128 --heads=1 --wd=0 --lr=3e-3 --steps=2000 --eval_every=250 \
        --model_args=intermediate_dim=0 --seeds=0,1,2,3,4 --out=docs/experiments/mqar/seeds/spread-random
"""

import argparse
import csv
import os
import sys
import time

import numpy as np

# The checkout's keras_lm, not an installed one (the script's folder is sys.path[0]).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--family", default="transformer")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--curriculum", default="",
                        help="pairs:steps[:sequence_length],... trained before --pairs")
    parser.add_argument("--sequence_length", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=None)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--position", default="rotary")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--wd", type=float, default=0.1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval_every", type=int, default=250)
    parser.add_argument("--eval_batches", type=int, default=8)
    parser.add_argument("--tie", type=int, default=1)
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_args", default="",
                        help="more TransformerLM arguments, e.g. qk_norm=rms,zero_init_output=true")
    parser.add_argument("--queries", default="spread", help="spread or after_pairs")
    parser.add_argument("--filler", default="random", help="random or constant")
    parser.add_argument("--random_filler_steps", type=int, default=0,
                        help="train this many steps with random filler first (a curriculum)")
    parser.add_argument("--csv", default=None, help="one CSV for every seed (appended)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: --seed)")
    parser.add_argument("--out", default=None, help="with --seeds: DIR/seed-<s>.csv per seed")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
    if (args.csv is None) == (args.out is None):
        parser.error("give one of --csv (one file) or --out (a CSV per seed)")
    for seed in seeds:
        args.seed = seed
        path = args.csv or os.path.join(args.out, f"seed-{seed}.csv")
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            if os.path.exists(path):
                os.remove(path)  # a seed's file holds one run
        train_seed(args, path)


DIAGNOSTICS = ("l1_previous_token", "to_value", "to_key", "to_pairs")


def diagnostics(model, task, args):
    """The MQAR circuit's attention shares (keras_lm.probes.mqar_heads) on one test batch."""
    if args.family != "transformer":
        return [""] * len(DIAGNOSTICS)
    from keras_lm.probes.mqar_heads import mqar_attention

    batch = task.sample(np.random.default_rng([args.seed, 99]), 32)
    best = mqar_attention(model, batch, task.mqar_num_pairs)["best"]
    return [round(best[k], 3) for k in ("previous_token_layer_1", "to_value_last_layer",
                                        "to_key_last_layer", "to_pairs_last_layer")]


def train_seed(args, csv_path):
    """Trains one model at `args.seed`, appending a row per evaluation to `csv_path`."""

    import keras

    from keras_lm.cli.config_flags import parse_model_args
    from keras_lm.data.synthetic import (
        Task,
        task_dataset,
        task_tokenizer,
        training_pairs,
    )
    from keras_lm.models import LSTMLM, TransformerLM
    from keras_lm.scoring import evaluate_task

    keras.utils.set_random_seed(args.seed)
    layout = dict(mqar_queries=args.queries, mqar_filler=args.filler)
    task = Task("mqar", args.sequence_length, args.vocab, mqar_num_pairs=args.pairs, **layout)
    tokenizer = task_tokenizer(task)
    if args.family == "transformer":
        model = TransformerLM(tokenizer.vocabulary_size, args.sequence_length,
                              num_layers=args.layers, num_heads=args.heads,
                              hidden_dim=args.width, position_embedding=args.position,
                              tie_embeddings=bool(args.tie), pad_id=tokenizer.pad_id,
                              **parse_model_args(args.model_args))
    else:
        model = LSTMLM(tokenizer.vocabulary_size, args.sequence_length, embedding_dim=args.width,
                       hidden_dim=args.width, num_layers=args.layers, pad_id=tokenizer.pad_id)
    model.compile(args.optimizer, learning_rate=args.lr, total_steps=args.steps,
                  warmup_steps=args.warmup, weight_decay=args.wd, jit_compile=True)
    stages = [[int(v) for v in part.split(":")] for part in args.curriculum.split(",") if part]
    done = 0
    # A stage may be shorter than the context (rotary positions carry over to longer ones).
    stage_tasks = [(Task("mqar", (stage + [args.sequence_length])[2], args.vocab,
                         mqar_num_pairs=stage[0], **layout), stage[1]) for stage in map(list, stages)]
    if args.random_filler_steps:  # a curriculum: random filler first, then the task's own
        stage_tasks.append((Task("mqar", args.sequence_length, args.vocab,
                                 mqar_num_pairs=args.pairs, mqar_queries=args.queries,
                                 mqar_filler="random"), args.random_filler_steps))
    stage_tasks.append((task, args.steps - sum(s for _, s in stage_tasks)))
    new = not os.path.exists(csv_path)
    with open(csv_path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["name", "family", "pairs", "vocab", "width", "heads", "position", "lr",
                             "warmup", "wd", "batch", "curriculum", "parameters", "step",
                             "train_loss", "exact_match", "by_query_order", "seconds",
                             "seed", "queries", "filler", "model_args", *DIAGNOSTICS])
        start = time.time()
        for stage, (stage_task, stage_steps) in enumerate(stage_tasks):
            left = stage_steps
            while left > 0:
                chunk = min(args.eval_every, left)
                # fit() restarts a dataset: a fresh seed per chunk, never the same batches.
                data = training_pairs(task_dataset(stage_task, args.batch,
                                                   seed=1000 * args.seed + done), stage_task,
                                      tokenizer.pad_id)
                history = model.fit(data, steps_per_epoch=chunk, epochs=1, verbose=0)
                left -= chunk
                done += chunk
                result = evaluate_task(model, task, batch_size=32, num_batches=args.eval_batches)
                order = result.get("exact_match_by_order", [])
                row = [args.name, args.family, args.pairs, task.vocabulary, args.width, args.heads,
                       args.position, args.lr, args.warmup, args.wd, args.batch,
                       args.curriculum or (f"random_filler:{args.random_filler_steps}"
                                           if args.random_filler_steps else ""),
                       model.count_params(), done, round(history.history["loss"][-1], 4),
                       round(result["exact_match"], 4), " ".join(f"{v:.2f}" for v in order),
                       round(time.time() - start), args.seed, args.queries, args.filler,
                       args.model_args, *diagnostics(model, task, args)]
                writer.writerow(row)
                f.flush()
                print(*row, flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
