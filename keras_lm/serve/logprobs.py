"""`logprobs` of a completion (OpenAI's legacy completions schema), from the Keras model.

For each new token: its log-probability under the model's own distribution
(the log-softmax of its logits: temperature 1, before any top-k/top-p
filter, as OpenAI reports them, whatever sampler chose the token), and the
`top` most likely tokens at that position. The top list leaves out the ids
the decoding loop never samples (`<pad>`, `<bos>`), so under greedy its
first entry is the chosen token. One forward pass over prompt and new
tokens, after the row has finished (one compiled function per model).

Example:
>>> from keras_lm.models import TransformerLM
>>> from keras_lm.tokenizers import ByteTokenizer
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
>>> out = completion_logprobs(model, ByteTokenizer(), [257, 97], [98, 99], top=2,
...                           banned_ids=(0, 257))
>>> out["tokens"], out["text_offset"], [0 < len(t) <= 2 for t in out["top_logprobs"]]
(['b', 'c'], [0, 1], [True, True])
>>> all(lp <= 0 for lp in out["token_logprobs"])
True
"""

import weakref

import numpy as np
import tensorflow as tf

MAX_LOGPROBS = 5  # as OpenAI's completions

_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> its compiled log-softmax and top-k


def _log_probs(model):
    """The compiled `(ids (1, time), banned (vocabulary,)) -> (log_probs, top values, top ids)`."""
    function = _FUNCTIONS.get(model)
    if function is None:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        @tf.function(input_signature=[tf.TensorSpec([1, None], tf.int32),
                                      tf.TensorSpec([model.vocabulary_size], tf.bool)])
        def function(ids, banned):
            logits = tf.cast(model_ref()(ids, training=False), tf.float32)  # (1, time, vocab)
            log_probs = tf.nn.log_softmax(logits)
            top = tf.math.top_k(tf.where(banned, -np.inf, log_probs), k=MAX_LOGPROBS)
            return log_probs[0], top.values[0], top.indices[0]

        _FUNCTIONS[model] = function
    return function


def completion_logprobs(model, tokenizer, prompt_ids, new_ids, top, banned_ids=()):
    """OpenAI's `choices[i].logprobs` for `new_ids` after `prompt_ids` (with `<bos>`).

    Returns `{"tokens", "token_logprobs", "top_logprobs", "text_offset"}`:
    each token's text, its log-probability, a `{text: logprob}` dict of the
    `top` likeliest tokens (0 to 5; fewer where two tokens read as the same
    text, as bytes of an unfinished character do), and where its text starts in the
    completion's text (a token that ends inside a character starts where
    the character does).
    """
    if not new_ids:
        return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    ids = np.asarray(list(prompt_ids) + list(new_ids), np.int32)
    banned = np.zeros(model.vocabulary_size, bool)
    banned[list(banned_ids)] = True
    log_probs, top_values, top_ids = (t.numpy() for t in _log_probs(model)(
        tf.constant(ids[None, :-1]), tf.constant(banned)))
    # Position p's logits predict token p + 1: the new tokens are predicted from
    # the last prompt position on.
    positions = np.arange(len(prompt_ids) - 1, len(ids) - 1)
    new = np.asarray(new_ids, np.int32)

    def text(token_ids):
        return tokenizer.decode_text(np.asarray(token_ids, np.int32))

    offsets = [len(text(new[:i]).rstrip("\ufffd")) for i in range(len(new))]
    return {
        "tokens": [text([i]) for i in new],
        "token_logprobs": [float(v) for v in log_probs[positions, new]],
        "top_logprobs": [_top(text, top_ids[p, :top], top_values[p, :top]) for p in positions],
        "text_offset": offsets,
    }


def _top(text, ids, values):
    """`{token text: logprob}`, likeliest first; a text seen already keeps its likelier value."""
    top = {}
    for i, value in zip(ids, values, strict=True):
        top.setdefault(text([i]), float(value))
    return top


def covering_tokens(tokenizer, ids, text):
    """The shortest prefix of `ids` whose text starts with `text` (a stop string cut it).

    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> covering_tokens(ByteTokenizer(), list(b"ab\\ncd"), "ab")
    [97, 98]
    """
    for k in range(len(ids) + 1):
        decoded = tokenizer.decode_text(np.asarray(ids[:k], np.int32))
        if decoded.startswith(text):
            return list(ids[:k])
    return list(ids)
