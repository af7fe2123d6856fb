"""Parity of exported files with the Keras model they came from.

`measure_parity` runs the same prompts and validation windows through Keras,
the SavedModel and each `.tflite` variant and reports, per format:

- `max_abs_logit_diff`: the largest |logit difference| from Keras at every
  prompt position (SavedModel: its `logits` signature; TFLite: `prefill_N`
  then `decode`, as an app runs it);
- `greedy_agreement`: the fraction of Keras' greedy tokens (up to
  `GREEDY_TOKENS` new ones per prompt, our batched `generate` engine) that
  the format reproduces position by position, and `greedy_identical`;
- with validation windows: `perplexity` on them, `keras_perplexity`,
  `perplexity_change` (relative) and `top1_agreement` (teacher-forced).

With `litertlm` files (`{variant: path}`), LiteRT-LM's engine continues
each prompt's text greedily (`keras_lm.export.litertlm.engine_greedy`) and
its `greedy_agreement` / `greedy_identical` are measured as the
SavedModel's are, through text.

`check_parity` turns the report into failures against the bounds below.

Example (not run here: it needs exported files):

    report = measure_parity(model, tokenizer, prompts, windows,
                            saved_model="D/saved_model",
                            tflite={"float32": "D/tflite/model_float32.tflite"})
    assert not check_parity(report)
"""

import math

import numpy as np
import tensorflow as tf

from keras_lm.export.litert_runner import LiteRTRunner, run_prompt
from keras_lm.export.saved_model import RAW_SIGNATURE
from keras_lm.generation.decoding import decode_tokens
from keras_lm.generation.samplers import GreedySampler

GREEDY_TOKENS = 64
# Float32 files compute the same function: only summation order differs.
FLOAT32_MAX_ABS_LOGIT_DIFF = 1e-4
# fp16 and dynamic_int8 may cost at most this much validation perplexity.
MAX_PERPLEXITY_INCREASE = 0.02
# int4 weights may cost at most this much.
MAX_INT4_PERPLEXITY_INCREASE = 0.05
BOUNDED_QUANTIZATIONS = ("fp16", "dynamic_int8")


def measure_parity(model, tokenizer, prompts, windows=(), *, saved_model=None, tflite=None,
                   litertlm=None):
    """Compares the exported files with `model` (see the module docstring).

    Args:
        model, tokenizer: the Keras model and its tokenizer.
        prompts: lists of token ids, each starting with `<bos>`.
        windows: int arrays of `N + 1` validation tokens, `N` one of the
            files' prefill lengths (perplexity and top-1 agreement).
        saved_model: a SavedModel directory written by `export_saved_model`.
        tflite: `{variant: path}` of `.tflite` files.

    Returns:
        `{"saved_model": {...}, "tflite": {variant: {...}}, "prompts": n,
        "greedy_tokens": n, "windows": n, "window_tokens": N}`.
    """
    new_tokens = min(GREEDY_TOKENS, model.sequence_length - max(len(p) for p in prompts))
    keras_logits = [np.asarray(model(np.array([p], np.int32)))[0] for p in prompts]
    keras_greedy = _keras_greedy(model, tokenizer, prompts, new_tokens)
    windows = np.asarray(windows, np.int32).reshape(-1, np.shape(windows)[-1] if len(windows) else 1)
    keras_window_logits = np.asarray(model(windows[:, :-1])) if len(windows) else None
    report = {
        "prompts": len(prompts),
        "greedy_tokens": new_tokens,
        "windows": len(windows),
        "window_tokens": int(windows.shape[1] - 1) if len(windows) else 0,
        "tflite": {},
    }
    if saved_model is not None:
        report["saved_model"] = _saved_model_parity(
            saved_model, prompts, keras_logits, keras_greedy, tokenizer, new_tokens
        )
    for variant, path in (tflite or {}).items():
        runner = LiteRTRunner(path)
        logits = [runner_logits(runner, p) for p in prompts]
        greedy = [
            runner.generate_ids(p, new_tokens, **_special(tokenizer)) for p in prompts
        ]
        figures = _compare(logits, keras_logits, greedy, keras_greedy)
        if len(windows):
            figures.update(_window_figures(runner, windows, keras_window_logits))
        report["tflite"][variant] = figures
    if litertlm:
        from keras_lm.export.litertlm import (
            engine_greedy,  # LiteRT-LM: only when asked for
        )

        texts = [tokenizer.decode_text(np.array(p[1:], np.int32)) for p in prompts]
        expected = [_text_ids_of(tokenizer, g) for g in keras_greedy]
        report["litertlm"] = {}
        for variant, path in litertlm.items():
            greedy = [_text_ids(tokenizer, text.encode("utf-8"))
                      for text in engine_greedy(path, texts, new_tokens)]
            figures = _compare(keras_logits, keras_logits, greedy, expected)
            del figures["max_abs_logit_diff"]  # the engine returns text, not logits
            report["litertlm"][variant] = figures
    return report


def check_parity(report):
    """The bounds `report` violates, as one-line strings (empty: all hold)."""
    failures = []
    formats = [("saved_model", report.get("saved_model"))]
    formats += [(f"tflite {v}", f) for v, f in report["tflite"].items()]
    formats += [(f"litertlm {v}", f) for v, f in report.get("litertlm", {}).items()]
    for name, figures in formats:
        if figures is None:
            continue
        if name in ("saved_model", "tflite float32", "litertlm float32"):
            if figures.get("max_abs_logit_diff", 0) > FLOAT32_MAX_ABS_LOGIT_DIFF:
                failures.append(
                    f"{name}: max |logit difference| {figures['max_abs_logit_diff']:.2e} "
                    f"> {FLOAT32_MAX_ABS_LOGIT_DIFF:.0e}"
                )
            if not figures["greedy_identical"]:
                failures.append(
                    f"{name}: greedy tokens differ from Keras (agreement "
                    f"{figures['greedy_agreement']:.1%})"
                )
        bound = {**dict.fromkeys(BOUNDED_QUANTIZATIONS, MAX_PERPLEXITY_INCREASE),
                 "int4": MAX_INT4_PERPLEXITY_INCREASE}.get(name.split()[-1])
        if bound is not None and "perplexity_change" in figures:
            if figures["perplexity_change"] > bound:
                failures.append(
                    f"{name}: validation perplexity {figures['perplexity_change']:+.2%} "
                    f"> +{bound:.0%}"
                )
    return failures


def runner_logits(runner, ids):
    """Logits `(len(ids), vocabulary)` at every position, run as an app runs them."""
    return np.concatenate([logits for logits, _ in run_prompt(runner, ids)])


def _special(tokenizer):
    # As `keras_lm.generation.generate` and the `.litertlm`'s suppressed
    # tokens: never <pad> or <bos>, unless it is <eos> too (an imported GPT-2
    # or Llama 3 pads with its end token, which must still end a text).
    banned = tuple(i for i in (tokenizer.pad_id, tokenizer.bos_id) if i != tokenizer.eos_id)
    return dict(end_id=tokenizer.eos_id, banned_ids=banned)


def _keras_greedy(model, tokenizer, prompts, new_tokens):
    rows = [[] for _ in prompts]
    special = _special(tokenizer)
    for chunk in decode_tokens(
        model, [list(p) for p in prompts], new_tokens, GreedySampler(),
        pad_id=tokenizer.pad_id, **special,
    ):
        for row, ids in zip(rows, chunk):
            row.extend(ids)
    return rows


def _compare(logits, keras_logits, greedy, keras_greedy):
    worst = max(float(np.abs(a - b).max()) for a, b in zip(logits, keras_logits))
    same = total = 0
    for ids, expected in zip(greedy, keras_greedy):
        total += len(expected)
        for a, b in zip(ids, expected):
            if a != b:
                break  # after a divergence the texts are different texts
            same += 1
    return {
        "max_abs_logit_diff": worst,
        "greedy_agreement": same / max(total, 1),
        "greedy_identical": all(a == b for a, b in zip(greedy, keras_greedy)),
    }


def _window_figures(runner, windows, keras_logits):
    length = windows.shape[1] - 1
    if length not in runner.prefill_lengths:
        raise ValueError(
            f"windows: {length} tokens is not a prefill length of the file "
            f"({runner.prefill_lengths})"
        )
    logits = np.concatenate([runner.prefill(w[:-1])[0] for w in windows])
    targets = windows[:, 1:]
    loss, keras_loss = _mean_loss(logits, targets), _mean_loss(keras_logits, targets)
    return {
        "perplexity": math.exp(loss),
        "keras_perplexity": math.exp(keras_loss),
        "perplexity_change": math.exp(loss - keras_loss) - 1,
        "top1_agreement": float((logits.argmax(-1) == keras_logits.argmax(-1)).mean()),
    }


def _mean_loss(logits, targets):
    logits = logits.astype(np.float64)
    top = logits.max(-1, keepdims=True)
    log_norm = np.log(np.exp(logits - top).sum(-1)) + top[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], -1)[..., 0]
    return float((log_norm - picked).mean())


def _saved_model_parity(path, prompts, keras_logits, keras_greedy, tokenizer, new_tokens):
    loaded = tf.saved_model.load(path)
    logits_fn = loaded.signatures["logits"]
    logits = [logits_fn(token_ids=tf.constant([p], tf.int32))["logits"].numpy()[0] for p in prompts]
    # The served text path: greedy over the prompt text, compared as ids. With
    # a prompt template the prompts here are ids already formatted: they go
    # to `sample_raw` (greedy at temperature 0), which is `serving_default`
    # without the template's string join (tests/export/test_template_export.py).
    greedy = []
    serve = loaded.signatures["serving_default"]
    if RAW_SIGNATURE in loaded.signatures:
        raw = loaded.signatures[RAW_SIGNATURE]

        def serve(prompts, max_new_tokens):
            return raw(prompts=prompts, max_new_tokens=max_new_tokens,
                       temperature=tf.constant(0.0), top_k=tf.constant(0),
                       top_p=tf.constant(1.0), seed=tf.constant(0, tf.int64))

    for prompt in prompts:
        text = tokenizer.decode_text(np.array(prompt[1:], np.int32))
        out = serve(prompts=tf.constant([text]), max_new_tokens=tf.constant(new_tokens))
        greedy.append(_text_ids(tokenizer, out["text"].numpy()[0]))
    return _compare(logits, keras_logits, greedy, [_text_ids_of(tokenizer, g) for g in keras_greedy])


def _text_ids(tokenizer, data):
    return [int(i) for i in tokenizer.encode(data.decode("utf-8", "replace")).numpy()]


def _text_ids_of(tokenizer, ids):
    """Keras' greedy ids as the SavedModel returns them: through text."""
    return _text_ids(tokenizer, tokenizer.decode_text(np.array(ids, np.int32)).encode("utf-8"))
