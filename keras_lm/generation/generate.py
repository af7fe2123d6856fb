"""Text in, text out: prompts, context limits, stop strings and streaming.

The token loop itself is `keras_lm.generation.decoding` (compiled, cached).
"""

import logging

import numpy as np

from keras_lm.errors import UsageError
from keras_lm.generation import decoding
from keras_lm.generation.samplers import BeamSampler, get_sampler
from keras_lm.generation.text_stream import TextStream, cut_at_stop

logger = logging.getLogger("keras_lm")
TRUNCATE = (None, "left")
# With stop strings and no streaming, check the text every this many steps.
_STOP_CHECK_STEPS = 16


def special_ids(tokenizer):
    """The decoding loop's token ids of `tokenizer`: a row ends at `<eos>`, pads with
    `<pad>`, and never produces `<pad>` or `<bos>` unless that id is `<eos>` too (GPT-2's
    one `<|endoftext|>` is all three)."""
    banned = tuple(i for i in (tokenizer.pad_id, tokenizer.bos_id) if i != tokenizer.eos_id)
    return dict(end_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, banned_ids=banned)


def generate(
    model,
    tokenizer,
    prompts,
    max_new_tokens=100,
    *,
    sampler="greedy",
    temperature=None,
    top_k=None,
    top_p=None,
    beam_width=None,
    seed=None,
    stop=None,
    truncate=None,
):
    """Continues each prompt and returns the new text (without the prompt).

    Args:
        model: a `keras_lm` language model.
        tokenizer: its tokenizer.
        prompts: a string, or a list of strings (of any lengths; one batch).
            The empty string starts a new document from `<bos>`. A prompt
            may also be a list of token ids that starts with `<bos>` (a
            conversation: `PromptTemplate.chat_ids`).
        max_new_tokens: new tokens per prompt at most; prompt plus new
            tokens must fit the model's context (`model.sequence_length`).
        sampler: `greedy`, `temperature`, `top_k`, `top_p`, `beam`, or a
            `keras_lm.generation.Sampler`; `temperature`, `top_k`, `top_p`,
            `beam_width` are its options (temperature 0 is greedy).
        seed: int; the same seed gives the same text.
        stop: a string or list of strings; a row's text ends before the
            first one it produces. Every row also stops at `<eos>`.
        truncate: None (a prompt too long for the context is an error) or
            `"left"` (its beginning is cut off, with a warning).

    Returns:
        A string for a string prompt, else a list of strings.

    Example:
    >>> from keras_lm.models import TransformerLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
    >>> text = generate(model, ByteTokenizer(), "def ", max_new_tokens=5, stop=["\\n"])
    >>> isinstance(text, str)
    True
    """
    texts = None
    for texts in _generate_texts(
        model, tokenizer, prompts, max_new_tokens, sampler,
        dict(temperature=temperature, top_k=top_k, top_p=top_p, beam_width=beam_width),
        seed, stop, truncate, streaming=False,
    ):
        pass
    return texts[0] if isinstance(prompts, str) else texts


def stream(
    model,
    tokenizer,
    prompt,
    max_new_tokens=100,
    *,
    sampler="greedy",
    temperature=None,
    top_k=None,
    top_p=None,
    seed=None,
    stop=None,
    truncate=None,
):
    """Like `generate` for one prompt, but yields the text piece by piece as it comes.

    Beam search is not offered: its best beam is only known at the end.

    Example:
    >>> from keras_lm.models import TransformerLM
    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> model = TransformerLM.from_preset("tiny", vocabulary_size=259)
    >>> pieces = list(stream(model, ByteTokenizer(), "def ", max_new_tokens=4))
    >>> isinstance("".join(pieces), str)
    True
    """
    if not isinstance(prompt, str):
        raise UsageError(f"prompt: stream takes one string, got {type(prompt).__name__}", argument="prompt")
    if sampler == "beam" or isinstance(sampler, BeamSampler):
        raise UsageError("sampler: beam search cannot stream (use generate)", argument="sampler")
    emitted = ""
    for (text,) in _generate_texts(
        model, tokenizer, prompt, max_new_tokens, sampler,
        dict(temperature=temperature, top_k=top_k, top_p=top_p, beam_width=None),
        seed, stop, truncate, streaming=True,
    ):
        if len(text) > len(emitted):
            yield text[len(emitted):]
            emitted = text


def encode_prompts(tokenizer, prompts, max_new_tokens, context, truncate=None):
    """Token ids `<bos> prompt` per prompt, checked (or cut) to fit the context.

    A prompt is a string, or a list of token ids that already starts with
    `<bos>` (a rendered conversation: `PromptTemplate.chat_ids`), which is
    checked the same way.

    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> encode_prompts(ByteTokenizer(), ["a", [257, 98]], 2, context=8)
    [[257, 97], [257, 98]]
    """
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens <= 0:
        raise UsageError(f"max_new_tokens must be an integer > 0, got {max_new_tokens!r}", argument="max_new_tokens")
    if max_new_tokens >= context:
        raise UsageError(
            f"max_new_tokens must be < the model's context of {context} tokens "
            f"(one is the prompt's <bos>), got {max_new_tokens}", argument="max_new_tokens")
    if truncate not in TRUNCATE:
        raise UsageError(f"truncate must be None or 'left', got {truncate!r}", argument="truncate")
    if not prompts or not all(isinstance(p, str) or _is_ids(p) for p in prompts):
        raise UsageError(f"prompts must be a string or a non-empty list of strings (or of "
                         f"token id lists), got {prompts!r}", argument="prompts")
    room = context - max_new_tokens
    encoded = []
    for prompt in prompts:
        if isinstance(prompt, str):
            ids = [tokenizer.bos_id] + tokenizer.encode(prompt).numpy().tolist()
        else:
            ids = [int(i) for i in prompt]
        if len(ids) > room:
            if truncate != "left":
                raise UsageError(
                    f"prompt: {len(ids)} tokens (with <bos>) + max_new_tokens={max_new_tokens} "
                    f"exceed the model's context of {context} tokens; shorten it, lower "
                    f"max_new_tokens, or truncate='left'", argument="prompt")
            logger.warning(
                "prompt truncated from the left: kept its last %d of %d tokens "
                "to fit the context of %d with max_new_tokens=%d",
                room, len(ids), context, max_new_tokens,
            )
            ids = ids[-room:]
        encoded.append(ids)
    return encoded


def _is_ids(prompt):
    """A non-empty list of token ids (ints, NumPy's too; not bools)."""
    return (isinstance(prompt, (list, tuple)) and len(prompt) > 0
            and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in prompt))


def _generate_texts(
    model, tokenizer, prompts, max_new_tokens, sampler, options, seed, stop, truncate, streaming
):
    """Yields the texts of all rows so far (safe to show: no partial stop string)."""
    sampler = get_sampler(sampler, **{k: v for k, v in options.items() if v is not None})
    sampler.validate(model.vocabulary_size)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise UsageError(f"seed must be an integer or None, got {seed!r}", argument="seed")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if any(not isinstance(s, str) or not s for s in stops):
        raise UsageError(f"stop must be a non-empty string or a list of them, got {stop!r}", argument="stop")
    batch = encode_prompts(
        tokenizer, [prompts] if isinstance(prompts, str) else list(prompts),
        max_new_tokens, model.sequence_length, truncate,
    )
    special = special_ids(tokenizer)
    if isinstance(sampler, BeamSampler):
        rows = decoding.beam_search_tokens(model, batch, max_new_tokens, sampler.beam_width, **special)
        yield [cut_at_stop(tokenizer.decode_text(np.array(r, np.int32)), stops)[0] for r in rows]
        return
    steps = 1 if streaming else (_STOP_CHECK_STEPS if stops else None)
    texts = [TextStream(tokenizer, stops) for _ in batch]
    for chunk in decoding.decode_tokens(
        model, batch, max_new_tokens, sampler, seed=seed, steps_per_call=steps, **special
    ):
        for text, tokens in zip(texts, chunk):
            text.add(tokens)
        if all(text.stopped for text in texts):
            break
        yield [text.text for text in texts]
    for text in texts:
        text.finish()
    yield [text.text for text in texts]
