"""Labelled texts as a run's source: the interface of `training.sources`, for a classifier.

A `ClassifierSource` gives what a `TextSource` or a `PairsSource` gives
(tokenizer, datasets, facts for config.json, final scores), so the run
directory, callbacks, console and resume of `keras_lm.training` serve a
classifier run unchanged. Its batches are `(token_ids, label_index)`: each
text as `<bos> text <eos>`, cut to `max_length` (its beginning kept) and
padded with the pad id (see `TextClassifier.encode`).
"""

import numpy as np
import tensorflow as tf

from keras_lm.adaptation.classifier_metrics import evaluate_classifier
from keras_lm.adaptation.labeled_data import labeled_split
from keras_lm.models.text_classifier import encode_texts

# Validation rows per batch when the run evaluates.
VALIDATION_BATCH = 64


class ClassifierSource:
    """The rows of `config` (a `ClassifierConfig`: `data` / `val_data`), checked, split, encoded.

    Reading and checking happen here, in the constructor: every bad row is
    reported before the run writes anything.
    """

    has_text = False  # no samples to generate, no bits per byte
    tokens_per_byte = val_tokens_per_byte = None
    final_scores_note = "scoring the validation rows..."

    def __init__(self, config, tokenizer):
        self.config = config
        self._tokenizer = tokenizer
        (self.train_rows, self.val_rows, self.labels,
         self.validation) = labeled_split(config.data, config.val_data, config.text_key,
                                          config.label_key)
        self.train_ids, train_cut = self._encode(self.train_rows)
        self.val_ids, val_cut = self._encode(self.val_rows)
        self.truncated = train_cut + val_cut
        self.split_note = None
        if self.truncated:
            total = len(self.train_rows) + len(self.val_rows)
            self.split_note = (f"{self.truncated:,} of {total:,} texts are longer than "
                               f"{config.max_length} tokens: their beginning was kept")

    def _encode(self, rows):
        ids, lengths = encode_texts(self._tokenizer, [row.text for row in rows],
                                    self.config.max_length)
        return ids.numpy(), int(np.sum(lengths.numpy() > self.config.max_length))

    def _targets(self, rows):
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[row.label] for row in rows], np.int32)

    @property
    def probe_text(self):
        """The first validation text (a view that looks at one text would show it)."""
        return self.val_rows[0].text

    def description(self):
        return (f"{len(self.labels)} labels, {len(self.train_rows):,} train / "
                f"{len(self.val_rows):,} validation rows ({self.validation['kind']})")

    def tokenizer(self, resuming, directory):
        return self._tokenizer

    def steps_for_epochs(self, epochs, tokens_per_step):
        # tokens_per_step is batch x max_length: one step reads `batch_size` rows.
        batch = tokens_per_step // self.config.sequence_length
        return max(1, round(epochs * len(self.train_rows) / batch))

    def datasets(self, tokenizer=None, resuming=False):
        """`(train, validation)`: shuffled endless batches of the training rows (the last
        partial batch of each pass dropped); every validation row."""
        config = self.config
        batch = min(config.batch_size, len(self.train_rows))
        train = (tf.data.Dataset.from_tensor_slices((self.train_ids,
                                                     self._targets(self.train_rows)))
                 .shuffle(len(self.train_rows), seed=config.seed, reshuffle_each_iteration=True)
                 .repeat().batch(batch, drop_remainder=True))
        val = tf.data.Dataset.from_tensor_slices((self.val_ids, self._targets(self.val_rows)))
        return train, val.batch(VALIDATION_BATCH).cache()

    def facts(self):
        """What config.json records about the rows."""
        return {"labels": self.labels, "validation": self.validation,
                "num_train_rows": len(self.train_rows), "num_val_rows": len(self.val_rows),
                "truncated_texts": self.truncated,
                "num_train_files": 0, "num_val_files": 0,
                "tokens_per_byte": None, "val_tokens_per_byte": None}

    def evaluate(self, model, tokenizer=None):
        """`evaluate_classifier`'s report on every validation row."""
        return evaluate_classifier(model, self.val_rows, tokenizer or self._tokenizer)

    def final_scores(self, model, tokenizer=None, history=None, report=None):
        """Accuracy, macro-F1, loss and per-class figures on the validation rows (from
        `report` when already measured), the training accuracy and the row counts."""
        report = report or self.evaluate(model, tokenizer)
        accuracy = (history.history.get("accuracy") if history is not None else None) or [None]
        return {"val_accuracy": report["accuracy"], "val_macro_f1": report["macro_f1"],
                "val_loss": report["loss"], "val_per_class": report["per_class"],
                "train_accuracy": None if accuracy[-1] is None else float(accuracy[-1]),
                "labels": self.labels, "train_examples": len(self.train_rows),
                "val_examples": len(self.val_rows)}

    def majority_share(self):
        """The validation accuracy of always answering the most frequent training label."""
        counts = {}
        for row in self.train_rows:
            counts[row.label] = counts.get(row.label, 0) + 1
        majority = max(counts, key=counts.get)
        return sum(row.label == majority for row in self.val_rows) / len(self.val_rows)
