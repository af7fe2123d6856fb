"""`explain`: which tokens of a prompt made the model say what it said.

Example:
>>> import keras
>>> from keras_lm.models import TransformerLM
>>> from keras_lm.tokenizers import ByteTokenizer
>>> keras.utils.set_random_seed(0)
>>> model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=16)
>>> result = explain(model, "the fox", target=" ran", tokenizer=ByteTokenizer(),
...                  method="integrated_gradients")
>>> result.tokens, result.method
(['t', 'h', 'e', ' ', 'f', 'o', 'x'], 'integrated_gradients')
>>> # Completeness: the scores sum to logp(prompt) - logp(all <pad>), up to the quadrature.
>>> change = result.target_logp - result.details["baseline_logp"]
>>> bool(abs(sum(result.scores) - change) <= max(1e-3, 0.01 * abs(change)))
True
"""

import itertools

import numpy as np

from keras_lm.errors import UsageError
from keras_lm.generation import special_ids
from keras_lm.interpret import masking, methods, sampling
from keras_lm.interpret.explanation import Explanation
from keras_lm.interpret.objective import (
    classifier_objective,
    greedy_next_token,
    language_model_objective,
)
from keras_lm.models import LanguageModel, TextClassifier
from keras_lm.models.text_classifier import encode_texts

METHODS = ("integrated_gradients", "gradient_x_input", "occlusion", "shap", "lime")
# What `compare=True` runs: the methods that cost a few forward/backward passes.
# SHAP and LIME evaluate hundreds of masked inputs, so they join only when
# asked (`compare="all"`).
CHEAP_METHODS = ("integrated_gradients", "gradient_x_input", "occlusion")
# The methods that differentiate the objective with respect to the embeddings.
GRADIENT_METHODS = ("integrated_gradients", "gradient_x_input")
SAMPLING_METHODS = ("shap", "lime")
# The most faithful method costing at most 10x integrated gradients, measured by
# benchmarks/attribution_faithfulness.py (docs/interpret.md, "Which method to
# believe": LIME 0.587, SHAP 0.587, occlusion 0.563, integrated gradients
# 0.500; LIME and SHAP tie within noise). It needs the `explain` extra:
# without it, `FALLBACK_METHOD`.
DEFAULT_METHOD = "lime"
FALLBACK_METHOD = "integrated_gradients"
DEFAULT_STEPS = 64
MAX_STEPS = 4096
MAX_SAMPLES = 1_000_000


def explain(model, prompt, target=None, *, label=None, method=None,
            steps=DEFAULT_STEPS, span=1, compare=False, tokenizer=None, samples=None,
            seed=sampling.DEFAULT_SEED):
    """Per-token attributions of `prompt` for a target continuation or a classifier's label.

    Args:
        model: a `keras_lm` language model (`TransformerLM`, `LSTMLM`) or a
            `TextClassifier`.
        prompt: the text whose tokens are scored (not empty). A language
            model reads it as `<bos> prompt`, a classifier as `<bos> prompt <eos>`
            (cut to its `sequence_length`); `<bos>`/`<eos>` are not scored.
        target: a language model's continuation to explain (its tokens'
            summed log-probability); default: the model's own greedy next
            token. Prompt and target must fit the model's context.
        label: a classifier's label to explain (default: its prediction).
        method: one of `METHODS` (see `keras_lm.interpret.methods` and
            `keras_lm.interpret.sampling`; `shap` and `lime` need the
            `explain` extra: `pip install 'keras-lm[explain]'`); default:
            `default_method()`.
        steps: integration points of integrated gradients (1..4096).
        span: tokens removed at a time by occlusion.
        compare: also run other methods and report the rank agreement
            (Spearman) of every pair in `agreement`: `True` the three
            `CHEAP_METHODS`, `"all"` every method (SHAP and LIME too).
        tokenizer: default: the one `keras_lm.load` attached to the model.
        samples: masked inputs SHAP and LIME evaluate (default:
            `sampling.default_samples(prompt tokens)`).
        seed: the seed of SHAP's permutations and LIME's samples.

    Returns:
        An `Explanation`. Mistakes raise `UsageError` naming the argument.
    """
    method = default_method() if method is None else method
    names = _check_arguments(method, steps, compare, samples, seed)
    _check_gradients_possible(model, names)
    tokenizer = tokenizer or getattr(model, "tokenizer", None)
    objective, target_text, target_tokens = build_objective(model, prompt, target, label,
                                                            tokenizer)
    count = objective.stop - objective.start
    if isinstance(span, bool) or not isinstance(span, (int, np.integer)) or not 1 <= span <= count:
        raise UsageError(f"span must be an integer in [1, {count}] (the prompt's tokens), got "
                         f"{span!r}", argument="span")
    settings = dict(pad_id=tokenizer.pad_id, steps=int(steps), span=int(span), seed=int(seed),
                    samples=sampling.default_samples(count) if samples is None else int(samples))
    computed = {name: run_method(name, objective, **settings) for name in names}
    ids = objective.token_ids[objective.attributed]
    return Explanation(
        tokens=token_texts(tokenizer, ids), token_ids=[int(i) for i in ids],
        scores=computed[method][0], method=method, target=target_text,
        target_tokens=target_tokens, target_ids=list(objective.target_ids),
        target_logp=objective.logp(), kind="label" if objective.classifier else "continuation",
        details=computed[method][1],
        agreement={f"{a} vs {b}": methods.spearman(computed[a][0], computed[b][0])
                   for a, b in itertools.combinations(computed, 2)},
        all_scores={name: result[0] for name, result in computed.items()})


def default_method():
    """`DEFAULT_METHOD`, or `FALLBACK_METHOD` where its package is not installed."""
    if DEFAULT_METHOD in SAMPLING_METHODS:
        try:
            sampling.require(DEFAULT_METHOD)
        except UsageError:
            return FALLBACK_METHOD
    return DEFAULT_METHOD


def _check_gradients_possible(model, names):
    """UsageError naming `method` if a gradient method meets a model that runs from
    token ids only (`TransformerLM.ids_only_option`: its tables need the ids)."""
    language_model = getattr(model, "backbone", model)
    option = getattr(language_model, "ids_only_option", None)
    needs_embeddings = [n for n in names if n in GRADIENT_METHODS]
    if option and needs_embeddings:
        raise UsageError(f"method={needs_embeddings[0]}: the model's {option} needs token ids, "
                         "so it has no gradients with respect to the embeddings; use occlusion, "
                         "shap or lime", argument="method")


def _check_arguments(method, steps, compare, samples, seed):
    """The methods to run (`method` first); a bad argument is a `UsageError` naming it."""
    if method not in METHODS:
        raise UsageError(f"method must be one of {', '.join(METHODS)}, got {method!r}",
                         argument="method")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not (
            1 <= steps <= MAX_STEPS):
        raise UsageError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}",
                         argument="steps")
    if compare not in (True, False, "all"):
        raise UsageError(f"compare must be True, False or 'all', got {compare!r}",
                         argument="compare")
    if samples is not None and (isinstance(samples, bool) or not isinstance(
            samples, (int, np.integer)) or not 1 <= samples <= MAX_SAMPLES):
        raise UsageError(f"samples must be an integer in [1, {MAX_SAMPLES}], got {samples!r}",
                         argument="samples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (
            0 <= seed < 2**32):
        raise UsageError(f"seed must be an integer in [0, 2**32), got {seed!r}", argument="seed")
    others = {True: CHEAP_METHODS, False: (), "all": METHODS}[compare]
    names = [name for name in METHODS if name == method or name in others]
    for name in names:  # a missing package is reported before anything runs
        if name in SAMPLING_METHODS:
            sampling.require(name, argument="method" if name == method else "compare")
    return names


def build_objective(model, prompt, target, label, tokenizer):
    """`(Objective, target text, target tokens)` of `explain`'s arguments (checked there)."""
    if tokenizer is None:
        raise ValueError("tokenizer: explain needs the model's tokenizer, got None")
    if not isinstance(prompt, str) or not prompt:
        raise UsageError(f"prompt: give the text to explain, got {prompt!r}", argument="prompt")
    if isinstance(model, TextClassifier):
        return _label_objective(model, prompt, target, label, tokenizer)
    if isinstance(model, LanguageModel):
        return _continuation_objective(model, prompt, target, label, tokenizer)
    raise TypeError(f"model must be a keras_lm LanguageModel or TextClassifier, got "
                    f"{type(model).__name__}")


def run_method(name, objective, *, pad_id, steps=DEFAULT_STEPS, span=1, samples=None,
               seed=sampling.DEFAULT_SEED):
    """`(scores, details)` of one method (one of `METHODS`) on an `Objective`."""
    if name == "integrated_gradients":
        scores, details = methods.integrated_gradients(objective, pad_id, steps)
        return scores, {"steps": steps, **details}
    if name == "gradient_x_input":
        return methods.gradient_x_input(objective)
    if name == "occlusion":
        return methods.occlusion(objective, span)
    count = objective.stop - objective.start
    samples = sampling.default_samples(count) if samples is None else samples
    method = sampling.shap_scores if name == "shap" else sampling.lime_scores
    return method(lambda keep: masking.masked_logp(objective, keep), count, samples, seed)


def _continuation_objective(model, prompt, target, label, tokenizer):
    if label is not None:
        raise UsageError(f"label: {label!r} needs a classifier; this model is a language model "
                         "with no classifier head (make one with `keras-lm finetune "
                         "--head=classifier`), so explain a target instead", argument="label")
    prompt_ids = [tokenizer.bos_id] + _encode(tokenizer, prompt, "prompt")
    if target is None:
        if len(prompt_ids) > model.sequence_length:
            raise UsageError(f"prompt: {len(prompt_ids)} tokens (with <bos>) exceed the model's "
                             f"context of {model.sequence_length} tokens", argument="prompt")
        target_ids = [greedy_next_token(model, prompt_ids, special_ids(tokenizer)["banned_ids"])]
    else:
        if not isinstance(target, str) or not target:
            raise UsageError(f"target: give the continuation to explain, got {target!r}",
                             argument="target")
        target_ids = _encode(tokenizer, target, "target")
    # The model reads <bos>, the prompt and all target tokens but the last.
    if len(prompt_ids) + len(target_ids) - 1 > model.sequence_length:
        raise UsageError(
            f"target: the prompt ({len(prompt_ids)} tokens with <bos>) and the target "
            f"({len(target_ids)} tokens) exceed the model's context of {model.sequence_length} "
            "tokens; shorten them", argument="target" if target is not None else "prompt")
    target_tokens = token_texts(tokenizer, target_ids)
    text = target if target is not None else "".join(target_tokens)
    return language_model_objective(model, prompt_ids, target_ids), text, target_tokens


def _label_objective(model, prompt, target, label, tokenizer):
    if target is not None:
        raise UsageError(f"target: {target!r} needs a language model; this model is a "
                         "classifier, so explain a label (or its prediction)", argument="target")
    _encode(tokenizer, prompt, "prompt")  # not empty, nothing unknown
    ids, lengths = encode_texts(tokenizer, [prompt], model.sequence_length)
    if int(lengths[0]) > model.sequence_length:
        raise UsageError(f"prompt: {int(lengths[0])} tokens (with <bos> and <eos>) exceed the "
                         f"classifier's context of {model.sequence_length} tokens",
                         argument="prompt")
    ids = ids.numpy()[0]
    if label is None:
        label = model.labels[int(np.argmax(model(ids[None], training=False)[0]))]
    elif str(label) not in model.labels:
        raise UsageError(f"label: {label!r} is not one of the classifier's labels "
                         f"({', '.join(model.labels)})", argument="label")
    label = str(label)
    return classifier_objective(model, ids, model.labels.index(label)), label, [label]


def _encode(tokenizer, text, argument):
    """Token ids of `text`; a text that encodes to nothing, or to `<unk>`, is a `UsageError`."""
    ids = [int(i) for i in tokenizer.encode(text).numpy()]
    if not ids:
        raise UsageError(f"{argument}: {text!r} encodes to no tokens", argument=argument)
    if tokenizer.unk_id is not None and tokenizer.unk_id in ids:
        unknown = [c for c in text if tokenizer.unk_id in tokenizer.encode(c).numpy()]
        raise UsageError(f"{argument}: the tokenizer cannot encode {text!r} (unknown: "
                         f"{''.join(dict.fromkeys(unknown))!r})", argument=argument)
    return ids


def token_texts(tokenizer, ids):
    """The text of each token (special tokens by name, e.g. `<eos>`).

    A token that is part of a character (a byte of UTF-8) shows its bytes
    escaped (`\\xc3`), so no information is lost.

    >>> from keras_lm.tokenizers import ByteTokenizer
    >>> token_texts(ByteTokenizer(), [99, 195, 169, 258])
    ['c', '\\\\xc3', '\\\\xa9', '<eos>']
    """
    names = {i: name for name, i in tokenizer.special_ids.items()}
    pieces = tokenizer.decode(np.asarray(ids, np.int32)[:, None]).numpy() if len(ids) else []
    return [names.get(int(i)) or piece.decode("utf-8", errors="backslashreplace")
            for i, piece in zip(ids, pieces)]
