"""What a run trains on: text files, or a synthetic task. One interface for both.

A source gives the run its tokenizer, its `(train, validation)` datasets,
the ratio that turns a loss into bits per byte (None for a task), the text
the attention maps look at, and the scores of the finished model. The
trainer calls these and never asks which kind of source it holds.

Example:
>>> from keras_lm.training.config import TrainConfig
>>> source = make_source(TrainConfig(task="mqar", task_args={"mqar_num_pairs": 4},
...                                  sequence_length=32, vocabulary_size=64))
>>> source.description(), source.tokenizer(resuming=False, directory=None).vocabulary_size
('task mqar (64 ids)', 68)
"""

import math
import os

import numpy as np

from keras_lm import data
from keras_lm.data.synthetic import task_dataset, task_tokenizer, training_pairs
from keras_lm.scoring import evaluate_files, evaluate_task
from keras_lm.tokenizers import TOKENIZER_FILE, load_tokenizer, train_tokenizer
from keras_lm.tokenizers.text_sample import count_invalid_utf8
from keras_lm.training.tensorboard import DEFAULT_PROBE_TEXT

# The final evaluation reads at most this many validation tokens (the whole
# validation split of the built-in corpus is ~0.6M): bounded on huge corpora.
FINAL_EVAL_TOKENS = 1 << 22
# Batches of a task's held-out (`test`) stream scored at the end of a run.
FINAL_EVAL_BATCHES = 32


def make_source(config):
    """The source of `config`: `TaskSource` with `config.task`, else `TextSource`."""
    return TaskSource(config) if config.task else TextSource(config)


class TextSource:
    """Text files (`train_files`, or the built-in corpus), split into train and validation.

    `tokenizer`: use this one (a fine-tuned base's) rather than train one.
    """

    has_text = True  # samples and bits per byte make sense
    probe_text = DEFAULT_PROBE_TEXT
    final_scores_note = (f"evaluating on the validation text (up to {FINAL_EVAL_TOKENS:,} "
                         "tokens)...")

    def __init__(self, config, tokenizer=None):
        self.config = config
        # A fixed tokenizer (a fine-tuned base's) instead of one trained here.
        self._fixed_tokenizer = tokenizer
        # Split by file, or inside the files when they are too few (see data.run_files).
        self.files = data.run_files(config.corpus, config.train_files, config.val_files,
                                    config.validation_fraction)
        self.train_files, self.val_files = self.files
        self.split_note = (data.describe_split(self.files)
                           if self.files.split == "within_files" else None)
        self.tokens_per_byte = self.val_tokens_per_byte = None

    def description(self):
        return f"{len(self.train_files)} train / {len(self.val_files)} validation files"

    def tokenizer(self, resuming, directory):
        """The fixed one if given; reloaded from `directory` when resuming, else trained
        on the training files."""
        path = os.path.join(directory, TOKENIZER_FILE) if directory else None
        if self._fixed_tokenizer is not None:
            tokenizer = self._fixed_tokenizer
        elif resuming and os.path.isfile(path):
            tokenizer = load_tokenizer(path)
        else:
            config = self.config
            if config.tokenizer != "byte":
                # Byte ids keep invalid UTF-8 as it is; other tokenizers replace it.
                count_invalid_utf8(self.train_files).report("training files")
            tokenizer = train_tokenizer(config.tokenizer, self.train_files,
                                        config.vocabulary_size, config.normalize,
                                        config.sentencepiece_model_type)
        self.tokens_per_byte = data.tokens_per_byte(self.train_files, tokenizer)
        self.val_tokens_per_byte = data.tokens_per_byte(self.val_files, tokenizer)
        return tokenizer

    def steps_for_epochs(self, epochs, tokens_per_step):
        train_bytes = data.total_bytes(self.train_files)
        tokens = math.ceil(epochs * train_bytes * self.tokens_per_byte)
        return data.steps_for_tokens(tokens, tokens_per_step, self.config.batch_warmup_steps)

    def datasets(self, tokenizer, resuming=False):
        """`(train, validation)`: shuffled endless windows; the first `val_steps` batches.

        A resumed run reads its stream from the start again, without the warm-ups
        (its first run took them)."""
        config = self.config
        train = data.text_dataset(
            self.train_files, tokenizer, config.sequence_length, config.batch_size,
            shuffle=True, repeat=True, seed=config.seed, shuffle_buffer=config.shuffle_buffer)
        if not resuming:
            train = data.short_windows_first(train, config.sequence_warmup_steps)
            train = data.small_batches_first(train, config.batch_warmup_steps)
        # The same first `val_steps` batches at every interval, cached: Keras keeps
        # its validation iterator across epochs, so a longer dataset would be
        # read further on at each interval and the curve would mix subsets.
        val = data.text_dataset(self.val_files, tokenizer, config.sequence_length,
                                config.batch_size)
        return train, _filled_cache(val.take(config.val_steps))

    def facts(self):
        """What config.json records about the source."""
        return dict(num_train_files=len(self.train_files), num_val_files=len(self.val_files),
                    tokens_per_byte=self.tokens_per_byte,
                    val_tokens_per_byte=self.val_tokens_per_byte, **self.files.config_fields())

    def final_scores(self, model, tokenizer, history):
        """Loss, perplexity and bits per byte on the validation files, and xz's figure."""
        scores = evaluate_files(model, tokenizer, self.val_files,
                                batch_size=self.config.batch_size,
                                tokens_per_byte=self.val_tokens_per_byte,
                                max_tokens=FINAL_EVAL_TOKENS)
        return {**{f"val_{k}": v for k, v in scores.items()},
                "xz_val_bits_per_byte": data.xz_bits_per_byte(self.val_files)}


class TaskSource:
    """A synthetic task (`keras_lm.data.synthetic`): its ids are the tokens.

    The tokenizer is an `IdTokenizer`: the task's ids (0 .. V-1, named `0`,
    `1`, ... or, for addition, `0`-`9 + = ;`) then `<pad> <bos> <eos> <unk>`,
    so the model has V + 4 ids. The final scores are the answer scores of a
    held-out stream (`keras_lm.scoring.evaluate_task`): exact match, token
    accuracy, token edit distance and answer log-likelihood.
    """

    has_text = False
    tokens_per_byte = val_tokens_per_byte = None
    final_scores_note = f"scoring the answers of {FINAL_EVAL_BATCHES} held-out batches..."
    split_note = None

    def __init__(self, config):
        self.config = config
        self.task = config.make_task()
        self._tokenizer = task_tokenizer(self.task)

    def description(self):
        return f"task {self.task.name} ({self.task.vocabulary} ids)"

    def tokenizer(self, resuming, directory):
        return self._tokenizer

    @property
    def probe_text(self):
        """A short sequence of the task as text: what the attention maps show."""
        batch = self.task.sample(np.random.default_rng(0), 1)
        return self._tokenizer.decode_text(batch["inputs"][0, :24])

    def datasets(self, tokenizer, resuming=False):
        """`(train, validation)` pairs; validation is `val_steps` batches of its own stream."""
        config, task = self.config, self.task
        train = training_pairs(task_dataset(task, config.batch_size, seed=config.seed), task,
                               tokenizer.pad_id)
        val = task_dataset(task, config.batch_size, seed=config.seed, split="validation",
                           num_batches=config.val_steps)
        return train, _filled_cache(training_pairs(val, task, tokenizer.pad_id))

    def facts(self):
        return dict(num_train_files=0, num_val_files=0, tokens_per_byte=None,
                    val_tokens_per_byte=None)

    def final_scores(self, model, tokenizer, history):
        scores = evaluate_task(model, self.task, batch_size=self.config.batch_size,
                               num_batches=FINAL_EVAL_BATCHES, seed=self.config.seed,
                               split="test")
        return {"val_loss": history.history["val_loss"][-1], **scores}


def _filled_cache(dataset):
    """`dataset` cached, the cache filled now, whole (a partly read cache warns)."""
    dataset = dataset.cache()
    for _ in dataset:
        pass
    return dataset
