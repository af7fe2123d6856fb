"""Prompt -> response pairs as a run's source: the interface of `training.sources`.

A `PairsSource` gives what a `TextSource` gives (tokenizer, datasets,
final scores, facts for config.json), so the run directory, callbacks and
console of `keras_lm.training` serve a fine-tuning run unchanged. Its
batches are `(inputs, targets, sample_weights)`, the weights 1 on response
tokens and 0 on prompts and padding, so Keras' loss and metrics count the
responses only (see `keras_lm.data.pairs`).
"""

import logging

from keras_lm import data
from keras_lm.scoring import evaluate_pairs

logger = logging.getLogger("keras_lm")
# The validation batches read at each interval hold at most this many pairs.
MAX_INTERVAL_VALIDATION_PAIRS = 512


class PairsSource:
    """The pairs of `config` (`data` / `val_data`, or a built-in pair set), encoded.

    Reading and encoding happen here, in the constructor: every bad row is
    reported before the run writes anything.
    """

    has_text = True  # samples of the responses make sense
    tokens_per_byte = val_tokens_per_byte = None  # no bits per byte for responses
    final_scores_note = "scoring the responses of the validation pairs..."

    def __init__(self, config, tokenizer, template, sequence_length):
        self.config = config
        self.template = template
        self._tokenizer = tokenizer
        self.pairs = data.run_pairs(config.data, config.val_data, config.prompt_key,
                                    config.response_key, config.validation_fraction,
                                    config.pairs_corpus, config.pairs_corpus_max_bytes)
        self.train_pairs, self.val_pairs = self.pairs
        self.train_examples = data.encode_pairs(self.train_pairs, tokenizer, template,
                                                sequence_length, "data")
        self.val_examples = data.encode_pairs(self.val_pairs, tokenizer, template,
                                              sequence_length, "val_data" if config.val_data
                                              else "data")
        self.length = data.padded_length(self.train_examples, sequence_length)
        self.val_length = data.padded_length(self.val_examples, sequence_length)
        truncated = self.train_examples.truncated + self.val_examples.truncated
        self.split_note = None
        if truncated:
            self.split_note = (f"{truncated:,} of {len(self.train_pairs) + len(self.val_pairs):,} "
                               f"prompts were cut from the left to fit the context of "
                               f"{sequence_length} tokens")

    @property
    def probe_text(self):
        """The first validation pair as trained: what the attention maps show."""
        pair = self.val_pairs[0]
        return self.template.apply(pair.prompt) + pair.response

    def description(self):
        rule = ("given" if self.pairs.split == "given"
                else f"{self.config.validation_fraction:.0%} by a hash of the row")
        return (f"{len(self.train_pairs):,} train / {len(self.val_pairs):,} validation pairs "
                f"({rule}), loss on {self.train_examples.response_tokens:,} response tokens")

    def tokenizer(self, resuming, directory):
        return self._tokenizer

    def steps_for_epochs(self, epochs, tokens_per_step):
        # tokens_per_step is batch x context: one step reads `batch_size` pairs.
        batch = tokens_per_step // self.config.sequence_length
        return max(1, round(epochs * len(self.train_pairs) / batch))

    def datasets(self, tokenizer, resuming=False):
        """`(train, validation)`: shuffled endless batches; the validation pairs (up to 512)."""
        config = self.config
        train = data.pairs_dataset(self.train_examples, config.batch_size, self.length,
                                   tokenizer.pad_id, shuffle=True, repeat=True, seed=config.seed)
        examples = self.val_examples
        if len(examples) > MAX_INTERVAL_VALIDATION_PAIRS:
            n = MAX_INTERVAL_VALIDATION_PAIRS
            examples = data.EncodedPairs(examples.inputs[:n], examples.targets[:n],
                                         examples.weights[:n], 0)
        val = data.pairs_dataset(examples, config.batch_size, self.val_length, tokenizer.pad_id)
        return train, val.cache()

    def facts(self):
        """What config.json records about the pairs (with the settings that rebuild them)."""
        return {"num_train_pairs": len(self.train_pairs), "num_val_pairs": len(self.val_pairs),
                "pairs_validation": self.pairs.split,
                "truncated_prompts": self.train_examples.truncated + self.val_examples.truncated,
                "num_train_files": 0, "num_val_files": 0,
                "tokens_per_byte": None, "val_tokens_per_byte": None}

    def final_scores(self, model, tokenizer, history=None):
        """Loss, perplexity and token accuracy on every validation response."""
        scores = evaluate_pairs(model, self.val_examples, self.config.batch_size,
                                tokenizer.pad_id)
        return {"val_loss": scores["response_loss"],
                "val_perplexity": scores["response_perplexity"],
                "val_token_accuracy": scores["response_token_accuracy"],
                "val_pairs": scores["examples"], "val_response_tokens": scores["response_tokens"]}
