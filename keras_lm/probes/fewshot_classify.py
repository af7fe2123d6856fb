"""In-context learning against fine-tuning on a real classification task.

`fewshot_classify(model_dir, data, shots)` takes a trained language model
and labelled rows, holds out the validation rows (a deterministic 10% by a
hash of the row, as `finetune_classifier` does) as queries, and for each
number `k` of labelled examples:

- **few-shot prompting**: the prompt is `k` training examples, each as
  `example_format` (default `"{text} # {label}\\n"`), then the query's text
  up to its label; each label is scored by the model's log-likelihood of
  the label's text and what follows it (`" # asyncio\\n"` is scored on
  `asyncio\\n`), summed over its tokens (`keras_lm.scoring.token_scores`),
  and the most likely label is the answer. A `k` whose prompts do not fit
  the context (the longest, `<bos>` to the end of a label, against the
  model's `sequence_length`) is reported as not fitting, never cut;
- **fine-tuning**: a `TextClassifier` on a copy of the same model, trained
  on the same `k` examples (`finetune_steps` steps) and scored on the same
  queries. `k = 0` has nothing to train on (reported as None).

The `k` examples are the first `k` of one seeded shuffle of the training
rows, so the 8 examples include the 4; `repeats > 1` averages over that
many shuffles. Chance (`1 / labels`) and the majority label's share are
reported beside, and how often the prompt chose each label
(`fewshot_predictions`): a model that answers one label whatever the query
scores that label's share, and this shows it.

Example (after `keras-lm train`; the CLI is `keras-lm probe --probe=fewshot_classify`):
    result = fewshot_classify("saved_models/quickstart", "classify_stdlib",
                              shots=(0, 1, 2, 4, 8, 32))
    [(row["shots"], row["fewshot_accuracy"], row["finetuned_accuracy"]) for row in result["rows"]]
"""

import os

import numpy as np
from matplotlib.figure import Figure

from keras_lm.adaptation.classifier import labeled_split
from keras_lm.errors import UsageError
from keras_lm.figures import png_bytes
from keras_lm.io_utils import atomic_path
from keras_lm.model_dir import load_model_dir
from keras_lm.models import LanguageModel, TextClassifier
from keras_lm.models.text_classifier import encode_texts
from keras_lm.probes.runner import _trained_steps, _write
from keras_lm.scoring import token_scores

PROBE = "fewshot_classify"
EXAMPLE_FORMAT = "{text} # {label}\n"
DEFAULT_SHOTS = (0, 1, 2, 4, 8)
# Scored sequences are padded to a multiple of this (fewer compiled shapes).
LENGTH_BUCKET = 32


def fewshot_classify(model_dir, data, shots=DEFAULT_SHOTS, *, text_key="text", label_key="label",
                     seed=0, repeats=1, max_queries=200, batch_size=32, finetune_steps=60,
                     finetune_learning_rate=1e-3, example_format=EXAMPLE_FORMAT, loaded=None,
                     write=True):
    """Runs the probe (see the module docstring); returns the result dict.

    With `write`, also writes `model_dir/probes/fewshot_classify.json`,
    `.png` (accuracy against the number of labelled examples, both ways)
    and `.md` (the table), and the PNG and figures to TensorBoard
    (`logs/probes`). A bad argument raises `UsageError` naming it.
    """
    shots = check_shots(shots)
    for name, value in (("repeats", repeats), ("max_queries", max_queries),
                        ("batch_size", batch_size), ("finetune_steps", finetune_steps)):
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}", argument=name)
    before, after = split_format(example_format)
    model, tokenizer, _ = loaded or load_model_dir(model_dir)
    if not isinstance(model, LanguageModel):
        raise UsageError(f"model_dir: {model_dir!r} holds a {type(model).__name__}; the few-shot "
                         "probe prompts a language model (the base of a classifier)",
                         argument="model_dir")
    train_rows, queries, labels, _ = labeled_split(data, None, text_key, label_key)
    queries = queries[:max_queries]
    if max(shots) > len(train_rows):
        raise UsageError(f"shots: {max(shots)} examples asked, the data has {len(train_rows)} "
                         "training rows", argument="shots")
    truth = np.array([labels.index(row.label) for row in queries])
    finetuner = None
    if any(shots):
        width = min(model.sequence_length,
                    2 + max(len(tokenizer.encode(row.text)) for row in train_rows + queries))
        finetuner = Finetuner(model, tokenizer, labels, width, finetune_steps,
                              finetune_learning_rate)
    results = {k: {"fewshot": [], "finetuned": [], "longest_tokens": 0,
                   "predicted": dict.fromkeys(labels, 0)} for k in shots}
    for repeat in range(repeats):
        order = np.random.default_rng(seed + repeat).permutation(len(train_rows))
        for k in shots:
            examples = [train_rows[i] for i in order[:k]]
            prefix = "".join(before.format(text=row.text) + row.label + after for row in examples)
            scores, longest = label_scores(model, tokenizer, prefix, queries, labels, before,
                                           after, batch_size)
            entry = results[k]
            entry["longest_tokens"] = max(entry["longest_tokens"], longest)
            if scores is not None:
                entry["fewshot"].append(float((scores.argmax(-1) == truth).mean()))
                for i in scores.argmax(-1):  # a model that always answers one label shows here
                    entry["predicted"][labels[i]] += 1
            if k:
                entry["finetuned"].append(finetuner.accuracy(examples, queries, seed + repeat))
    counts = {label: sum(row.label == label for row in train_rows) for label in labels}
    majority = max(counts, key=counts.get)
    result = {
        "probe": PROBE,
        "model_dir": str(model_dir),
        "labels": labels,
        "queries": len(queries),
        "training_rows": len(train_rows),
        "context": int(model.sequence_length),
        "example_format": example_format,
        "repeats": repeats,
        "finetune_steps": finetune_steps,
        "chance": 1 / len(labels),
        "majority": float(np.mean([row.label == majority for row in queries])),
        "rows": [_row(k, results[k], model.sequence_length) for k in shots],
    }
    if write:
        png = fewshot_figure(result)
        _write(model_dir, PROBE, result, png, _trained_steps(model_dir))
        with atomic_path(os.path.join(model_dir, "probes", f"{PROBE}.md")) as tmp, \
                open(tmp, "w", encoding="utf-8") as f:
            f.write(fewshot_table(result) + "\n")
    return result


def _row(k, entry, context):
    fits = len(entry["fewshot"]) > 0
    mean = (lambda values: float(np.mean(values)) if values else None)
    return {"shots": k, "fits": fits, "longest_prompt_tokens": entry["longest_tokens"],
            "context": int(context), "fewshot_accuracy": mean(entry["fewshot"]),
            "finetuned_accuracy": mean(entry["finetuned"]),
            "fewshot_predictions": entry["predicted"] if fits else None}


def label_scores(model, tokenizer, prefix, queries, labels, before, after, batch_size=32):
    """`(scores, longest)`: the log-likelihood of each label after each query's prompt.

    `scores` is `(queries, labels)` (None when some prompt does not fit the
    context); `longest` is the longest sequence in tokens (`<bos>`,
    prompt, label and what follows it), the figure that decides whether it fits.
    """
    continuations = [tokenizer.encode(label + after).numpy().tolist() for label in labels]
    sequences, starts = [], []
    for row in queries:
        prompt = [tokenizer.bos_id] + tokenizer.encode(prefix + before.format(text=row.text)
                                                       ).numpy().tolist()
        for continuation in continuations:
            sequences.append(prompt + continuation)
            starts.append(len(prompt))
    longest = max(len(s) for s in sequences)
    if longest - 1 > model.sequence_length:  # inputs are all tokens but the last
        return None, longest
    scores = np.zeros(len(sequences))
    score = token_scores(model)
    width = min(model.sequence_length + 1, -(-longest // LENGTH_BUCKET) * LENGTH_BUCKET + 1)
    for first in range(0, len(sequences), batch_size):
        batch = sequences[first:first + batch_size]
        # One shape for every batch (one compiled function): the longest
        # sequence of the whole set, in buckets, and a full batch.
        ids = np.full((batch_size, width), tokenizer.pad_id, np.int32)
        for i, sequence in enumerate(batch):
            ids[i, :len(sequence)] = sequence
        log_probs = score(ids[:, :-1], ids[:, 1:])[0].numpy()
        for i, sequence in enumerate(batch):
            start = starts[first + i]  # the first continuation token is target start - 1
            scores[first + i] = log_probs[i, start - 1:len(sequence) - 1].sum()
    return scores.reshape(len(queries), len(labels)), longest


class Finetuner:
    """Fine-tunes a classifier on a copy of `model` afresh for each set of examples.

    One classifier, compiled once (no XLA: a few steps do not pay for a
    compilation): before each set its weights go back to the language
    model's and a new head, its optimizer's state to zero, so each set
    trains from the same start without tracing the step again. Inputs are
    padded to one width and batches are always `batch_size` rows (drawn
    again from fewer examples), so the shapes never change either.
    """

    def __init__(self, model, tokenizer, labels, width, steps, learning_rate, batch_size=16):
        backbone = type(model).from_config(model.get_config())
        backbone.set_weights(model.get_weights())
        self.classifier = TextClassifier(backbone, labels, pooling="last")
        self.tokenizer = tokenizer
        self.initial = self.classifier.get_weights()
        self.width = width
        self.steps = steps
        self.batch_size = batch_size
        self.classifier.compile("adamw", learning_rate=learning_rate, total_steps=steps,
                                warmup_steps=max(1, steps // 10), jit_compile=False)

    def accuracy(self, examples, queries, seed):
        """Accuracy on `queries` after training on `examples` from the start."""
        import tensorflow as tf

        classifier = self.classifier
        classifier.set_weights(self.initial)
        for variable in classifier.optimizer.variables:
            variable.assign(tf.zeros_like(variable))
        index = {label: i for i, label in enumerate(classifier.labels)}
        ids = self._ids(examples)
        targets = np.array([index[row.label] for row in examples], np.int32)
        train = (tf.data.Dataset.from_tensor_slices((ids, targets))
                 .shuffle(len(examples), seed=seed).repeat().batch(self.batch_size))
        classifier.fit(train, epochs=1, steps_per_epoch=self.steps, verbose=0, shuffle=False)
        logits = np.concatenate([np.asarray(classifier(chunk))
                                 for chunk in np.array_split(self._ids(queries),
                                                             max(1, len(queries) // 64))])
        return float(np.mean([classifier.labels[i] == row.label
                              for i, row in zip(logits.argmax(-1), queries)]))

    def _ids(self, rows):
        ids, _ = encode_texts(self.tokenizer, [row.text for row in rows],
                              self.classifier.sequence_length, pad_to=self.width)
        return ids.numpy()


def check_shots(shots):
    """`shots` as a sorted tuple of distinct ints >= 0, or `UsageError`.

    Example:
    >>> check_shots("8,0,2")
    (0, 2, 8)
    """
    if isinstance(shots, str):
        shots = [part for part in shots.split(",") if part.strip()]
    try:
        values = sorted({int(k) for k in shots})
    except (TypeError, ValueError):
        raise UsageError(f"shots must be integers >= 0, got {shots!r}", argument="shots") from None
    if not values or values[0] < 0:
        raise UsageError(f"shots must be integers >= 0, got {shots!r}", argument="shots")
    return tuple(values)


def split_format(example_format):
    """`(before, after)` the `{label}` of `example_format`; `before` holds `{text}`.

    Example:
    >>> split_format("{text} # {label}\\n")
    ('{text} # ', '\\n')
    """
    if (example_format.count("{label}") != 1 or example_format.count("{text}") != 1
            or example_format.index("{text}") > example_format.index("{label}")):
        raise UsageError(f"example_format must hold {{text}} then {{label}} once each, got "
                         f"{example_format!r}", argument="example_format")
    before, after = example_format.split("{label}")
    return before, after


def fewshot_table(result):
    """The result as a Markdown table: accuracy by number of labelled examples."""
    lines = [f"accuracy on {result['queries']} held-out rows, {len(result['labels'])} labels "
             f"(chance {result['chance']:.3f}, majority label {result['majority']:.3f})", "",
             "| labelled examples | few-shot prompt | fine-tuned classifier |",
             "|---:|---:|---:|"]
    for row in result["rows"]:
        fewshot = (f"{row['fewshot_accuracy']:.3f}" if row["fits"] else
                   f"does not fit ({row['longest_prompt_tokens']} > {row['context'] + 1} tokens)")
        tuned = ("-" if row["finetuned_accuracy"] is None
                 else f"{row['finetuned_accuracy']:.3f}")
        lines.append(f"| {row['shots']} | {fewshot} | {tuned} |")
    return "\n".join(lines)


def fewshot_figure(result):
    """PNG: accuracy against labelled examples, few-shot prompting and fine-tuning."""
    figure = Figure(figsize=(6.4, 4.0), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    rows = result["rows"]
    fitting = [(r["shots"], r["fewshot_accuracy"]) for r in rows if r["fits"]]
    tuned = [(r["shots"], r["finetuned_accuracy"]) for r in rows
             if r["finetuned_accuracy"] is not None]
    if fitting:
        axes.plot(*zip(*fitting), marker="o", label="few-shot prompt (in context)")
    if tuned:
        axes.plot(*zip(*tuned), marker="s", label="fine-tuned classifier (same examples)")
    too_long = [r["shots"] for r in rows if not r["fits"]]
    if too_long:
        axes.plot(too_long, [0.0] * len(too_long), "x", color="tab:red", markersize=9,
                  label="prompt does not fit the context")
    axes.axhline(result["chance"], color="gray", linestyle="--", linewidth=1, label="chance")
    axes.set_xscale("symlog", linthresh=1)
    shots = [r["shots"] for r in rows]
    axes.set_xticks(shots, [str(k) for k in shots])
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlabel("labelled examples")
    axes.set_ylabel(f"accuracy on {result['queries']} held-out rows")
    axes.set_title(f"in-context learning vs fine-tuning ({len(result['labels'])} labels)",
                   fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    return png_bytes(figure)
