"""Scoring a model on prompt -> response pairs: the response tokens only."""

import math

import numpy as np

from keras_lm import data
from keras_lm.scoring.tokens import token_scores


def evaluate_pairs(model, examples, batch_size=32, pad_id=0):
    """Loss, perplexity and token accuracy over the response tokens of `examples`.

    `examples`: `keras_lm.data.EncodedPairs`. Each response token (and its
    `<eos>`) counts once; prompts and padding not at all. Every batch has
    the same width, so the compiled scoring function is traced once.

    Returns `{"response_loss", "response_perplexity",
    "response_token_accuracy", "examples", "response_tokens"}`.

    Example:
    >>> from keras_lm.data import Pair, encode_pairs
    >>> from keras_lm.models import TransformerLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
    >>> examples = encode_pairs([Pair("2+2=", "4", "x:1")], ByteTokenizer(), None, 16)
    >>> scores = evaluate_pairs(model, examples, pad_id=256)
    >>> scores["response_tokens"], scores["examples"]
    (2, 1)
    """
    length = data.padded_length(examples, model.sequence_length)
    scores = token_scores(model)
    total = hits = count = 0.0
    for inputs, targets, weights in data.pairs_dataset(examples, batch_size, length, pad_id):
        log_probs, predictions = (t.numpy() for t in scores(inputs, targets))
        weights = weights.numpy().astype("float64")
        total -= float((log_probs * weights).sum())
        hits += float(((predictions == targets.numpy()) * weights).sum())
        count += float(weights.sum())
    loss = total / count
    return {
        "response_loss": loss,
        "response_perplexity": math.exp(min(loss, 700.0)),
        "response_token_accuracy": hits / count,
        "examples": len(examples),
        "response_tokens": int(np.round(count)),
    }


__all__ = ["evaluate_pairs"]
