"""Text generation by recomputing a fixed window (simple and always correct).

A cached prefill/decode engine is a later step; this loop reruns the model
over a window of `model.sequence_length` tokens per new token, compiled once
(with XLA where the model family uses it) for that fixed shape.
"""

import numpy as np
import tensorflow as tf

from keras_lm.errors import UsageError


def generate(model, tokenizer, prompt="", max_new_tokens=100, temperature=0.0, seed=None):
    """Continues `prompt` and returns the new text (without the prompt).

    `temperature=0` is greedy decoding; above 0 samples from
    `softmax(logits / temperature)`, reproducibly for a given `seed`.
    Generation stops at `<eos>` or after `max_new_tokens`. A context longer
    than the model's window slides: the model sees the last
    `model.sequence_length` tokens.

    Example:
    >>> from keras_lm.models import TransformerLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> tokenizer = ByteTokenizer()
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
    >>> text = generate(model, tokenizer, "def ", max_new_tokens=5)
    >>> isinstance(text, str)
    True
    """
    if max_new_tokens <= 0:
        raise UsageError(f"max_new_tokens must be > 0, got {max_new_tokens}")
    if temperature < 0:
        raise UsageError(f"temperature must be >= 0, got {temperature}")
    window = model.sequence_length
    next_logits = _next_logits_function(model)
    rng = np.random.default_rng(seed)
    ids = [tokenizer.bos_id] + tokenizer.encode(prompt).numpy().tolist()
    new_ids = []
    for _ in range(max_new_tokens):
        context = ids[-window:]
        padded = np.full((1, window), tokenizer.pad_id, np.int32)
        padded[0, : len(context)] = context
        logits = next_logits(padded, np.int32(len(context) - 1)).numpy().astype(np.float64)
        logits[tokenizer.pad_id] = logits[tokenizer.bos_id] = -np.inf
        if temperature == 0:
            token = int(np.argmax(logits))
        else:
            probs = np.exp((logits - logits.max()) / temperature)
            token = int(rng.choice(len(probs), p=probs / probs.sum()))
        if token == tokenizer.eos_id:
            break
        ids.append(token)
        new_ids.append(token)
    return tokenizer.decode_text(np.array(new_ids, np.int32))


def _next_logits_function(model):
    """A compiled `(window, index) -> logits at index`, one per model."""
    function = getattr(model, "_keras_lm_next_logits", None)
    if function is None:

        @tf.function(jit_compile=getattr(model, "jit_compile_default", True))
        def function(window, index):
            # Causal: right padding after `index` does not change its logits.
            # A gather, not `[0, index]`: XLA compiles a slice with a tensor
            # index as a constant, so each new index would recompile.
            return tf.gather(model(window, training=False)[0], index)

        model._keras_lm_next_logits = function
    return function
