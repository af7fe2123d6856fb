"""Evaluating a model on text files: loss, perplexity, bits per byte."""

import math

from keras_lm import data
from keras_lm.scoring.tokens import scored_mask, token_scores


def evaluate_files(model, tokenizer, files, batch_size=32, sequence_length=None,
                   tokens_per_byte=None, max_tokens=None):
    """Mean next-token loss over every window of `files` (or the first `max_tokens`).

    `tokens_per_byte` is measured on `files` unless the caller already has it.

    Returns a dict: `loss` (nats per token), `perplexity`, `bits_per_byte`
    (loss summed over tokens / bytes of text / ln 2) and `tokens`.

    Example:
    >>> import os, tempfile
    >>> from keras_lm.models import TransformerLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("hello world " * 50)
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
    >>> result = evaluate_files(model, ByteTokenizer(), [path])
    >>> sorted(result)
    ['bits_per_byte', 'loss', 'perplexity', 'tokens']
    """
    sequence_length = sequence_length or model.sequence_length
    dataset = data.text_dataset(files, tokenizer, sequence_length, batch_size)
    if max_tokens is not None:
        dataset = dataset.take(max(1, max_tokens // (batch_size * sequence_length)))
    scores = token_scores(model)
    total = count = 0.0
    for x, y in dataset:
        log_probs, _ = scores(x, y)
        mask = scored_mask(y, tokenizer.pad_id)  # padding is no token of the text
        total -= float(log_probs.numpy()[mask].sum(dtype="float64"))
        count += float(mask.sum())
    if count == 0:
        raise ValueError(
            f"the files hold fewer than {sequence_length + 1} tokens: nothing to evaluate"
        )
    loss = total / count
    if tokens_per_byte is None:
        tokens_per_byte = data.tokens_per_byte(files, tokenizer)
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 700.0)),
        "bits_per_byte": loss * tokens_per_byte / math.log(2),
        "tokens": int(count),
    }


__all__ = ["evaluate_files"]
