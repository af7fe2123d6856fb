"""LoRA against full fine-tuning, side by side on the built-in docstring -> code pairs.

For each mode (full, LoRA) in its own process (so peak memory is its own):
load the base, train on the same pairs for the same wall-clock time, then
score the validation responses. Prints trainable parameters, median step
time, peak resident memory (the process's, TensorFlow included) and the
validation response loss reached, as a Markdown table for BENCHMARKS.md.

    python benchmarks/lora_vs_full.py --base_dir=saved_models/quickstart [--seconds=120]
    python benchmarks/lora_vs_full.py --preset=base --seconds=120   # an untrained base

`--preset` builds a random base of that size (enough for step time and
memory; its loss figures mean little). Both modes run with the defaults of
`keras-lm finetune` (learning rate 5e-4 full, 2e-3 LoRA), batch 16.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODES = ("full", "lora")


def run_mode(args):
    """One mode in this process; prints one JSON line."""
    import keras
    import keras_hub
    import numpy as np

    import keras_lm
    from keras_lm import data
    from keras_lm.adaptation import enable_lora
    from keras_lm.adaptation.config import FULL_LEARNING_RATE, LORA_LEARNING_RATE
    from keras_lm.metrics import TokenAccuracy
    from keras_lm.models import TransformerLM
    from keras_lm.prompt_template import PromptTemplate
    from keras_lm.scoring import evaluate_pairs
    from keras_lm.tokenizers import ByteTokenizer

    keras.utils.set_random_seed(0)
    if args.preset:
        tokenizer = ByteTokenizer()
        model = TransformerLM.from_preset(args.preset, vocabulary_size=259, sequence_length=256,
                                          pad_id=tokenizer.pad_id)
    else:
        model = keras_lm.load(args.base_dir)
        tokenizer = model.tokenizer
    context = model.sequence_length
    train, val = data.split_pairs(data.docstring_pairs(context - 16))
    template = PromptTemplate("{prompt}\n")
    train_examples = data.encode_pairs(train, tokenizer, template, context)
    val_examples = data.encode_pairs(val, tokenizer, template, context)
    batches = iter(data.pairs_dataset(train_examples, args.batch_size,
                                      data.padded_length(train_examples, context),
                                      tokenizer.pad_id, shuffle=True, repeat=True, seed=0))
    trainable = model.count_params()
    if args.mode == "lora":
        trainable = enable_lora(model, args.lora_rank)["trainable_parameters"]
    model.compile(
        "adamw", learning_rate=LORA_LEARNING_RATE if args.mode == "lora" else FULL_LEARNING_RATE,
        total_steps=None,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                       reduction="mean_with_sample_weight"),
        metrics=[keras_hub.metrics.Perplexity(from_logits=True), TokenAccuracy()])
    before = evaluate_pairs(model, val_examples, pad_id=tokenizer.pad_id)["response_loss"]
    model.train_on_batch(*next(batches))  # compile outside the clock
    step_times, start = [], time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        batch = next(batches)
        begin = time.perf_counter()
        model.train_on_batch(*batch)
        step_times.append(time.perf_counter() - begin)
    after = evaluate_pairs(model, val_examples, pad_id=tokenizer.pad_id)["response_loss"]
    print(json.dumps({
        "mode": args.mode, "trainable_parameters": int(trainable),
        "parameters": int(sum(np.prod(w.shape) for w in model.weights
                              if "lora" not in w.path)),
        "steps": len(step_times), "step_ms": 1000 * float(np.median(step_times)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss_before": before, "loss_after": after,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base_dir", default="saved_models/quickstart")
    parser.add_argument("--preset", default=None, help="a random base of this size instead")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lora_rank", type=int, default=8)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return run_mode(args)
    rows = []
    for mode in MODES:
        out = subprocess.run([sys.executable, __file__, f"--mode={mode}", *sys.argv[1:]],
                             stdout=subprocess.PIPE, text=True, check=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    from common import machine

    base = args.preset and f"random `{args.preset}`" or f"`{args.base_dir}`"
    print(f"{machine()}; base {base}; batch {args.batch_size}; {args.seconds:g} s of training "
          f"each; LoRA rank {args.lora_rank} on qkv,output,mlp_in,mlp_out\n")
    print("| | trainable parameters | median step | steps in the time | peak memory (RSS) "
          "| val response loss before -> after |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['trainable_parameters']:,} of {row['parameters']:,} "
              f"({row['trainable_parameters'] / row['parameters']:.1%}) | {row['step_ms']:.0f} ms "
              f"| {row['steps']} | {row['peak_rss_mb']:,.0f} MB | "
              f"{row['loss_before']:.3f} -> {row['loss_after']:.3f} |")


if __name__ == "__main__":
    main()
