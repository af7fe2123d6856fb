"""New tokens per second: our cached generation vs recomputing vs keras-hub.

At batch 1 and 8, 256 new tokens after a 32-token prompt, greedy, in one run:
(a) our `prefill`/`decode` loop (keras_lm.generation.decoding, XLA);
(b) the same model recomputing the whole padded sequence for every new token
    (an XLA while loop around `model(ids)`, the usual cache-less loop);
(c) keras-hub's `GPT2CausalLM.generate` with `jit_compile=True`, at the same
    depth, width, heads, MLP width and vocabulary (random weights);
and the LSTM family (a and b). Each figure is the best of `--repeats` timed
calls after one warm-up call (which compiles).

    python benchmarks/generate_speed.py [--repeats=3] [--only=transformer]

Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import machine  # noqa: E402
from keras_lm.generation import GreedySampler, decoding  # noqa: E402
from keras_lm.models import LSTMLM, TransformerLM  # noqa: E402

VOCABULARY = 259
PROMPT, NEW = 32, 256
TOTAL = PROMPT + NEW
# The quickstart Transformer's shape (the `small` preset) with room for 288
# tokens, and the `small` LSTM.
TRANSFORMER = dict(num_layers=4, num_heads=4, hidden_dim=128, intermediate_dim=512)
LSTM = dict(embedding_dim=64, hidden_dim=256, num_layers=2)


def best_seconds(function, repeats):
    function()  # compiles
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def cached(model, prompts):
    def run():
        # end_id=-1: no row stops early, every run makes all 256 tokens.
        for chunk in decoding.decode_tokens(
            model, prompts.tolist(), NEW, GreedySampler(), end_id=-1, pad_id=0
        ):
            assert all(len(row) == NEW for row in chunk)

    return run


def recompute(model, prompts):
    batch = prompts.shape[0]
    ids = np.zeros((batch, TOTAL), np.int32)
    ids[:, :PROMPT] = prompts

    @tf.function(jit_compile=True)
    def loop(ids):
        def body(position, ids):
            logits = tf.gather(model(ids, training=False), position - 1, axis=1)
            token = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return position + 1, keras.ops.slice_update(ids, (0, position), token[:, None])

        return tf.while_loop(lambda p, _: p < TOTAL, body, (tf.constant(PROMPT), ids))[1]

    return lambda: loop(tf.constant(ids)).numpy()


def keras_hub_gpt2(prompts):
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, max_sequence_length=TOTAL, dropout=0.0, **TRANSFORMER
    )
    causal_lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    # Keras resolves jit_compile="auto" to False on CPU; ask for XLA explicitly.
    causal_lm.compile(sampler="greedy", jit_compile=True)
    batch = prompts.shape[0]
    token_ids = np.zeros((batch, TOTAL), np.int32)
    token_ids[:, :PROMPT] = prompts
    padding_mask = np.zeros((batch, TOTAL), bool)
    padding_mask[:, :PROMPT] = True
    inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
    # Without a preprocessor, keras-hub generates until the inputs' padded length.
    return lambda: causal_lm.generate(inputs, stop_token_ids=None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["transformer", "lstm"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for batch in (1, 8):
        prompts = rng.integers(3, VOCABULARY, (batch, PROMPT)).astype(np.int32)
        tokens = batch * NEW
        if args.only in (None, "transformer"):
            model = TransformerLM(VOCABULARY, sequence_length=TOTAL, **TRANSFORMER)
            ours = tokens / best_seconds(cached(model, prompts), args.repeats)
            slow = tokens / best_seconds(recompute(model, prompts), args.repeats)
            hub = tokens / best_seconds(keras_hub_gpt2(prompts), args.repeats)
            rows.append(("Transformer", model.count_params(), batch, ours, slow, hub))
        if args.only in (None, "lstm"):
            model = LSTMLM(VOCABULARY, sequence_length=TOTAL, **LSTM)
            ours = tokens / best_seconds(cached(model, prompts), args.repeats)
            slow = tokens / best_seconds(recompute(model, prompts), args.repeats)
            rows.append(("LSTM", model.count_params(), batch, ours, slow, None))
    print(f"Machine: {machine()}; {PROMPT}-token prompt, {NEW} new tokens, greedy\n")
    print("| model | params | batch | cached (ours) | recompute (ours) | keras-hub GPT2 XLA "
          "| cached / recompute | cached / keras-hub |")
    print("|---|---|---|---|---|---|---|---|")
    for family, params, batch, ours, slow, hub in rows:
        hub_cell = f"{hub:,.0f}" if hub else "n/a"
        hub_ratio = f"{ours / hub:.1f}x" if hub else "n/a"
        print(f"| {family} | {params / 1e6:.2f}M | {batch} | {ours:,.0f} | {slow:,.0f} | "
              f"{hub_cell} | {ours / slow:.1f}x | {hub_ratio} |")


if __name__ == "__main__":
    main()
