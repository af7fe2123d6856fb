"""Train a character-level LSTM on your own text with plain `model.fit`.

    python examples/train_lstm.py [text files or globs...]

Without arguments it trains on the Python standard library (built in).
"""

import sys

import keras

from keras_lm import data
from keras_lm.models import LSTMLM
from keras_lm.tokenizers import CharTokenizer
from keras_lm.training import evaluate_files

files = data.resolve_files(sys.argv[1:]) if sys.argv[1:] else data.pystdlib_files()
train_files, val_files = data.split_files(files, validation_fraction=0.05)

tokenizer = CharTokenizer.train(train_files, max_vocabulary_size=256)
train_ds = data.text_dataset(train_files, tokenizer, sequence_length=64, batch_size=32,
                             shuffle=True, repeat=True, seed=0)
val_ds = data.text_dataset(val_files, tokenizer, sequence_length=64, batch_size=32)

keras.utils.set_random_seed(0)
model = LSTMLM(vocabulary_size=tokenizer.vocabulary_size, sequence_length=64,
               embedding_dim=64, hidden_dim=256, num_layers=2, dropout=0.1,
               pad_id=tokenizer.pad_id)
model.compile("adamw", learning_rate=3e-3, total_steps=300)
model.fit(train_ds, steps_per_epoch=100, epochs=3, validation_data=val_ds, validation_steps=10)

print(evaluate_files(model, tokenizer, val_files))
print(model.generate("def ", 50, tokenizer=tokenizer, sampler="top_p", top_p=0.9, seed=0))
model.save("lstm_example.keras")
tokenizer.save("lstm_example_tokenizer.json")
