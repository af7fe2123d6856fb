"""Fine-tune a classifier on a trained language model with plain `model.fit`.

    python examples/classifier.py [BASE_RUN] [LABELS] [EPOCHS]

BASE_RUN is a `keras-lm train` directory (default: saved_models/quickstart);
LABELS a .jsonl/.csv/.tsv file with `text` and `label` (default: the built-in
`classify_stdlib` rows: which standard-library package a function name comes
from). `keras-lm finetune --head=classifier` does the same with a run
directory, TensorBoard logs and a confusion matrix.
"""

import sys

import keras
import numpy as np

from keras_lm.adaptation.classifier_metrics import evaluate_classifier
from keras_lm.adaptation.labeled_data import label_set, read_rows, split_rows
from keras_lm.models import TextClassifier

base = sys.argv[1] if len(sys.argv) > 1 else "saved_models/quickstart"
rows = read_rows(sys.argv[2] if len(sys.argv) > 2 else "classify_stdlib")
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 9

train_rows, val_rows = split_rows(rows)  # a deterministic 10% (by hash) validates
labels = label_set(train_rows)

keras.utils.set_random_seed(0)
# The base's weights, its tokenizer (classifier.tokenizer) and a new dense head.
classifier = TextClassifier.from_lm(base, labels=labels, pooling="last", sequence_length=48)
x_train, _ = classifier.encode([row.text for row in train_rows])  # <bos> text <eos>, padded
y_train = np.array([labels.index(row.label) for row in train_rows])
x_val, _ = classifier.encode([row.text for row in val_rows])
y_val = np.array([labels.index(row.label) for row in val_rows])

batch_size = 32
classifier.compile("adamw", learning_rate=1e-3,
                   total_steps=epochs * -(-len(train_rows) // batch_size))
classifier.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
               validation_data=(x_val, y_val), verbose=2)

report = evaluate_classifier(classifier, val_rows)
print({k: report[k] for k in ("accuracy", "macro_f1", "examples")})
classifier.save("classifier_example.keras")  # keras.models.load_model reads it back
texts = ["get_event_loop", "assertAlmostEqual", "message_from_string"]
print(list(zip(texts, classifier.classify(texts))))
