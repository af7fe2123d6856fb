"""The classifier on the built-in labels: against bag-of-words, and against few-shot prompting.

On the `classify_stdlib` rows (which standard-library package a function
name comes from, 5 balanced classes; `keras_lm.adaptation.stdlib_labels`),
with the same deterministic split everywhere (10% by hash validates):

1. the `classify_stdlib` recipe (`finetune_classifier` with
   `CLASSIFY_STDLIB`'s settings) from BASE (the quickstart model): its wall
   time, from the start of this script (imports included) to the saved run;
2. bag-of-words baselines on the same training rows: Keras
   `TextVectorization` (names split into their words: `get_event_loop` ->
   get event loop, `assertEqual` -> assert equal; multi-hot) + logistic
   regression (one `Dense` layer, softmax), and the same with character
   trigrams;
3. the few-shot probe: accuracy against the number of labelled examples,
   in the prompt and fine-tuning a classifier on the same examples.

    python benchmarks/classify_stdlib.py [--base=saved_models/quickstart]
        [--shots=0,1,2,4,8,32,128,512] [--repeats=1] [--finetune_steps=100]

Prints Markdown for BENCHMARKS.md.
"""

import argparse
import os
import tempfile
import time

STARTED = time.time()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from common import machine  # noqa: E402
from keras_lm.adaptation.classifier import (  # noqa: E402
    ClassifierConfig,
    finetune_classifier,
    labeled_split,
)
from keras_lm.adaptation.stdlib_labels import CLASSIFY_STDLIB  # noqa: E402
from keras_lm.probes.fewshot_classify import fewshot_classify, fewshot_table  # noqa: E402


def split_identifiers(text):
    """Identifier words, lower case: `getEventLoop_now` -> `get event loop now`."""
    text = tf.strings.regex_replace(text, r"([a-z0-9])([A-Z])", r"\1 \2")
    text = tf.strings.regex_replace(text, r"[^A-Za-z0-9]+", " ")
    return tf.strings.lower(tf.strings.strip(text))


def bag_of_words_accuracy(train_rows, val_rows, labels, split="whitespace", ngrams=None,
                          epochs=300):
    """Validation accuracy of TextVectorization (multi-hot) + logistic regression."""
    keras.utils.set_random_seed(0)
    vectorizer = keras.layers.TextVectorization(
        standardize=split_identifiers if split == "whitespace" else "lower",
        split=split, ngrams=ngrams, output_mode="multi_hot")
    vectorizer.adapt(tf.constant([row.text for row in train_rows]))
    x_train = vectorizer(tf.constant([row.text for row in train_rows]))
    x_val = vectorizer(tf.constant([row.text for row in val_rows]))
    y_train = np.array([labels.index(row.label) for row in train_rows])
    y_val = np.array([labels.index(row.label) for row in val_rows])
    model = keras.Sequential([keras.layers.Dense(
        len(labels), kernel_regularizer=keras.regularizers.L2(1e-4))])
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=len(train_rows), epochs=epochs, verbose=0)
    return float(model.evaluate(x_val, y_val, verbose=0)[1]), int(vectorizer.vocabulary_size())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default=CLASSIFY_STDLIB["base_dir"])
    parser.add_argument("--shots", default="0,1,2,4,8,32,128,512")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--finetune_steps", type=int, default=100)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"machine: {machine()}; load average at start {load:.2f}")

    settings = {k: v for k, v in CLASSIFY_STDLIB.items() if k not in ("base_dir", "output_dir")}
    output = tempfile.mkdtemp(prefix="classify_stdlib_")
    metrics = finetune_classifier(ClassifierConfig.from_recipe(
        "classify_stdlib", base_dir=args.base, output_dir=output, verbose=2))
    recipe_seconds = time.time() - STARTED
    train_rows, val_rows, labels, _ = labeled_split(settings["data"])

    words, words_vocabulary = bag_of_words_accuracy(train_rows, val_rows, labels)
    trigrams, trigram_vocabulary = bag_of_words_accuracy(train_rows, val_rows, labels,
                                                         split="character", ngrams=3)
    majority = max(labels, key=lambda label: sum(r.label == label for r in train_rows))
    print(f"\n### classify_stdlib: {len(labels)} labels, {len(train_rows)} training / "
          f"{len(val_rows)} validation rows\n")
    print("| model | validation accuracy | macro-F1 |")
    print("|---|---:|---:|")
    print(f"| classifier on {args.base} (recipe: {settings['steps']} steps, "
          f"{metrics['num_parameters']:,} parameters) | {metrics['val_accuracy']:.3f} | "
          f"{metrics['val_macro_f1']:.3f} |")
    print(f"| bag of words ({words_vocabulary} identifier words) + logistic regression | "
          f"{words:.3f} | - |")
    print(f"| bag of character trigrams ({trigram_vocabulary}) + logistic regression | "
          f"{trigrams:.3f} | - |")
    print(f"| the majority label | "
          f"{np.mean([r.label == majority for r in val_rows]):.3f} | - |")
    print(f"\nrecipe wall time (script start to saved run): {recipe_seconds:.0f} s "
          f"(fine-tuning alone {metrics['wall_time_seconds']:.0f} s)")

    started = time.time()
    result = fewshot_classify(args.base, "classify_stdlib", args.shots, repeats=args.repeats,
                              finetune_steps=args.finetune_steps, write=False)
    print(f"\n### few-shot prompting vs fine-tuning (repeats={args.repeats}, fine-tuning "
          f"{args.finetune_steps} steps of 16; {time.time() - started:.0f} s)\n")
    print(fewshot_table(result))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
