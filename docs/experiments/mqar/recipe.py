"""MQAR recipe search: one training run of a 2-layer Transformer (or an LSTM) on MQAR.

Trains with `model.fit` on `keras_lm.data.synthetic` MQAR batches (loss on the
answers only, as `keras-lm train --task=mqar` does), evaluates exact match and
exact match by query order every `--eval_every` steps on the test stream, and
appends one row per evaluation to `--csv`. Used to find what makes MQAR learn
(see docs/experiments.md, "MQAR: the recipe").

    python docs/experiments/mqar/recipe.py --pairs=4 --lr=3e-3 --steps=1500 \
        --csv=docs/experiments/mqar/recipe_runs.csv --name=lr3e-3
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
    parser.add_argument("--csv", required=True)
    args = parser.parse_args()

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
    task = Task("mqar", args.sequence_length, args.vocab, mqar_num_pairs=args.pairs)
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
                         mqar_num_pairs=stage[0]), stage[1]) for stage in map(list, stages)]
    stage_tasks.append((task, args.steps - sum(s for _, s in stage_tasks)))
    new = not os.path.exists(args.csv)
    with open(args.csv, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["name", "family", "pairs", "vocab", "width", "heads", "position", "lr",
                             "warmup", "wd", "batch", "curriculum", "parameters", "step",
                             "train_loss", "exact_match", "by_query_order", "seconds"])
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
                       args.position, args.lr, args.warmup, args.wd, args.batch, args.curriculum,
                       model.count_params(), done, round(history.history["loss"][-1], 4),
                       round(result["exact_match"], 4), " ".join(f"{v:.2f}" for v in order),
                       round(time.time() - start)]
                writer.writerow(row)
                f.flush()
                print(*row, flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
