"""Export a language model's step API to one LiteRT (`.tflite`) file.

`export_tflite(model, path)` writes a single file holding one set of weights
and these signatures (batch size 1; `V` = vocabulary size):

- `prefill_{N}`, one per prompt length `N` in `prefill_lengths`:
  inputs `tokens` int32 `(1, N)`, `input_pos` int32 `(N,)` and every state
  tensor; outputs `logits` float32 `(1, N, V)` (the next-token logits after
  each of the `N` tokens) and every state tensor. The tokens sit at the
  positions `input_pos[0]`, `input_pos[0] + 1`, ...: our runner prefills
  from the zero state at `0..N-1`; LiteRT-LM's engine may prefill a long
  prompt in chunks (pad entries it leaves at the end are written past the
  real ones and overwritten later, never attended to).
- `decode`: inputs `tokens` int32 `(1, 1)`, `input_pos` int32 `(1,)` and
  every state tensor; outputs `logits` float32 `(1, 1, V)` and every state
  tensor.

These are the names LiteRT-LM's engine reads (the layout litert-torch
converts PyTorch models to; `keras_lm.export.schema` describes it once),
so the same file runs in our runner, in an app's own loop, and inside a
`.litertlm` bundle (`keras_lm.export.litertlm`). State tensors carry the
same name as an input and as an output, so an app feeds each output
straight back as the same-named input of the next call:

- Transformer: `kv_cache_k_{i}`, `kv_cache_v_{i}` (layer `i`), float32
  `(1, num_heads, sequence_length, head_dim)`: the key/value cache (a
  position at or past `sequence_length` is out of range); with `smear`
  also `previous_embedding`, float32 `(1, hidden_dim)`, and with
  `bigram_hash` `previous_token`, int32 `(1,)` (the last token's id plus
  one): both are written whole by every call, so a prompt must not be
  padded past its last token;
- LSTM: `layer_{i}_h`, `layer_{i}_c`, float32 `(1, hidden_dim)`.

The zero state is all zeros. A text of `L` prompt tokens runs the largest
`prefill_N` with `N <= L`, then `decode` at positions `N..L-1` (forced
prompt tokens) and on (generated tokens);
`keras_lm.export.litert_runner.run_prompt` does exactly that in NumPy.

Only TFLite builtin operators are used (no Select TF / Flex ops, no custom
ops): the Transformer's cache write is `DYNAMIC_UPDATE_SLICE`, and the LSTM
step is written with matmuls, `LOGISTIC` and `TANH` (no `WHILE` loop).

The file also carries a metadata entry `keras_lm` (JSON: family,
vocabulary and context sizes, signatures, state names, quantization, and
`state` and `signature_specs`, every tensor's name, shape and dtype, from
`keras_lm.export.schema`), read by
`keras_lm.export.litert_runner.read_metadata`.

Quantization (`quantize`):

- `none`: float32 weights and compute;
- `fp16`: float16 weights (half the size), dequantized to float32 on load;
- `dynamic_int8`: int8 weights; matmuls quantize activations on the fly;
- `int8`: int8 weights and activations, ranges calibrated by running
  `representative_ids` through the signatures (prefill from the zero state,
  decode over the states the model itself produces). Calibrated once, then:

  1. `full`: every operator that has an int8 builtin kernel gets int8
     activations (as with `TFLITE_BUILTINS_INT8`); operators without one
     stay float32 (the cache write `DYNAMIC_UPDATE_SLICE`, the rotary
     `SIN`/`COS`, ...). It is kept if it picks the float model's top token
     at >= `INT8_MIN_TOP1_AGREEMENT` of the representative positions.
  2. otherwise `matmuls`, if it agrees more often than `full`: int8
     activations only for `INT8_MATMUL_OPS` (matmuls and the embedding
     lookup); layer norms, softmax and its mask, residual adds, rotary and
     the LSTM gates stay float32. Measured on a briefly trained tiny rotary
     Transformer (top token vs float32 over 64 positions): `full` 33%;
     `full` with softmax, its -1e9 mask and the layer norm ops kept float
     34%, with MUL and ADD too 70%; `matmuls` 100%; `dynamic_int8` 98%.

  `TFLiteExport` records the mode, each candidate's agreement and error,
  and `float_operators` (what still computes on float32 activations).
  Matmul and embedding weights are int8 in both modes.

Inputs and outputs stay float32 (int32 for ids and positions) in every mode,
so an app's code is the same for each, and the state round-trips unchanged.
"""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_lm import compat
from keras_lm.errors import UsageError
from keras_lm.export.litert_runner import (
    METADATA_NAME,
    _model_bytes,
    _operators,
    _root,
    float_operator_names,
    operator_names,
    read_metadata,
    run_prompt,
)
from keras_lm.export.schema import ExportSchema, check_prefill_lengths
from keras_lm.export.tflite_rewrites import (
    fold_slices_of_packs,
    token_lookups_as_embedding_lookups,
)
from keras_lm.io_utils import write_bytes

QUANTIZATIONS = ("none", "fp16", "dynamic_int8", "int8", "int4")
# `int4`: ai-edge-quantizer's block size for the matmul weights (its
# weight-only recipe is channel-wise only; block-wise int4 is its dynamic
# recipe, as LiteRT-LM's own models ship). Channel-wise when a weight's
# input dimension is no multiple of it.
INT4_BLOCK_SIZE = 32
# `int4`: the token table (the lookups and a tied head's logits) gets int8
# channel-wise weights, the projections int4, as LiteRT-LM's mixed recipes
# keep sensitive tables at 8 bits. All-int4 moved a tiny Gemma 3's
# validation perplexity by +15% (int8 table: see BENCHMARKS.md).
TOKEN_TABLE_BITS = 8
# The block sizes ai-edge-quantizer implements (`QuantGranularity.BLOCKWISE_{n}`),
# and 0: channel-wise (one scale per output channel over all its inputs).
INT4_BLOCK_SIZES = (0, 32, 64, 128, 256)
INT4_BLOCK = f"BLOCKWISE_{INT4_BLOCK_SIZE}"  # the default granularity
# Decode positions calibrated for `int8`, over all representative texts.
CALIBRATION_DECODE_STEPS = 256
# `int8` keeps full integer when it picks the float model's top token at
# least this often on the representative texts; else int8 matmuls only.
INT8_MIN_TOP1_AGREEMENT = 0.95
# The operators that keep int8 activations in the `matmuls` fallback: the
# weight-heavy ones, where int8 pays (size, speed) and costs little accuracy.
INT8_MATMUL_OPS = ("BATCH_MATMUL", "FULLY_CONNECTED", "GATHER")
# Operators that keep float32 activations even in `full` int8: the int8 DIV
# kernel stops (`data[i] != zero_point`) when a divisor's calibrated range
# holds 0 and a later input rounds to it (a tiny Gemma 3's did, past its
# calibration texts).
INT8_FLOAT_OPS = ("DIV",)

__all__ = [
    "QUANTIZATIONS",
    "NonBuiltinOperatorError",
    "TFLiteExport",
    "builtin_operator_names",
    "export_tflite",
    "read_metadata",
]


class NonBuiltinOperatorError(RuntimeError):
    """A `.tflite` file needs a custom or Flex (Select TF) operator."""


@dataclasses.dataclass(frozen=True)
class TFLiteExport:
    """What `export_tflite` wrote.

    Attributes:
        path: the `.tflite` file.
        quantize: the quantization asked for.
        signatures: signature names (`prefill_{N}`..., `decode`).
        size_bytes: file size.
        operators: builtin operator names in the file (sorted).
        float_operators: operators computing on float32 activations.
        int8_mode: for `quantize="int8"`: `"full"` (every operator with an
            int8 kernel quantized) or `"matmuls"` (the fallback); else None.
        int8_top1_agreement: for `int8`, `{candidate: fraction}`: how often
            each candidate (`full`, then `matmuls` if tried) picked the float
            model's top token on the representative texts.
        int8_max_abs_error: for `int8`, `{candidate: max |logit error|}` there.
        int8_fallback_reason: why `full` was not kept, or None.
        schema: the `keras_lm.export.schema.ExportSchema` of the file.
        int4: for `quantize="int4"`: `{"granularity", "int4_weights" (names),
            "float_weights" (constant float tensors left, e.g. a tied
            embedding: {name: shape})}`; else None.
    """

    path: str
    quantize: str
    signatures: tuple
    size_bytes: int
    operators: tuple
    float_operators: tuple
    int8_mode: str = None
    int8_top1_agreement: dict = None
    int8_max_abs_error: dict = None
    int8_fallback_reason: str = None
    schema: ExportSchema = None
    int4: dict = None


def builtin_operator_names(path):
    """The operator names in a `.tflite` file (path or bytes), sorted, one each.

    Raises `NonBuiltinOperatorError` if the file uses any custom operator,
    Flex (`Flex...`, Select TF) operators included: such a file needs more
    than the builtin LiteRT runtime.

    Example (not run here: it needs an exported file):

        builtin_operator_names("model.tflite")  # ['ADD', 'BATCH_MATMUL', ...]
    """
    names = operator_names(path)
    custom = [name for name in names if name.startswith("CUSTOM:")]
    if custom:
        raise NonBuiltinOperatorError(
            f"{path if isinstance(path, (str, os.PathLike)) else 'model'} needs non-builtin "
            f"operators: {', '.join(custom)}"
        )
    return names


@dataclasses.dataclass(frozen=True)
class StepArchive:
    """The step functions of `model` written as one SavedModel (see `step_archive`)."""

    model: object  # the model given (the archive holds its float32 copy if it has one)
    schema: ExportSchema
    functions: dict  # `_step_functions` of the float32 model
    path: str


@contextlib.contextmanager
def step_archive(model, prefill_lengths=(8, 32)):
    """Writes `model`'s step functions once to a temporary SavedModel; yields a `StepArchive`.

    Tracing and writing the step functions costs more than converting them:
    an export of several variants of one model (the bundle: float32, fp16,
    dynamic_int8...) writes them once here and converts each from this
    archive, `export_tflite(..., archive=archive)`. Each file is the one
    `export_tflite` writes without it. The directory is removed on exit.
    """
    prefill_lengths = check_prefill_lengths(prefill_lengths, model.sequence_length)
    float32 = _float32_model(model)
    schema = ExportSchema.of(float32, prefill_lengths)  # of the float32 model: float32 state
    functions = _step_functions(float32, schema)
    # Keras variables reach the converter through a SavedModel written by
    # ExportArchive: converting a bare tf.function over Keras layers gave NaNs.
    path = tempfile.mkdtemp(prefix="keras_lm_tflite_")
    try:
        with _without_tokenizer(float32):
            archive = keras.export.ExportArchive()
            archive.track(float32)
            for name, (function, input_signature) in functions.items():
                archive.add_endpoint(name, function, input_signature=input_signature)
            archive.write_out(path, verbose=False)
        yield StepArchive(model, schema, functions, path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _without_tokenizer(model):
    """`model` without the tokenizer `keras_lm.load` attached, while the archive is written.

    The archive saves everything the model tracks; an imported model's
    tokenizer holds keras-hub's lookup tables, whose initializers are no
    TFLite builtins (`HashTableV2`), and the step functions never use it.
    """
    tokenizer = model.__dict__.get("tokenizer")
    if tokenizer is None:
        yield
        return
    del model.tokenizer
    try:
        yield
    finally:
        model.tokenizer = tokenizer


def export_tflite(
    model, path, prefill_lengths=(8, 32), quantize="none", representative_ids=None,
    from_float32=None, archive=None, int4_block_size=INT4_BLOCK_SIZE,
):
    """Writes `model`'s prefill and decode steps to one `.tflite` file at `path`.

    See the module docstring for the signatures, tensor names and
    quantization modes.

    Args:
        model: a `keras_lm.models.LanguageModel` (Transformer or LSTM); a
            mixed-precision model is exported from a float32 copy.
        path: the file to write (replaced atomically; nothing is left at
            `path` if the export fails).
        prefill_lengths: prompt lengths with a `prefill_{N}` signature, each
            in `[1, model.sequence_length]`.
        quantize: one of `QUANTIZATIONS`.
        representative_ids: for `quantize="int8"` (and only then): a list of
            1-D arrays of token ids, typical texts to calibrate ranges on.
        from_float32: for `quantize="int4"` (and only then), optional: the
            float32 file (path or bytes) this function wrote for the same
            model and `prefill_lengths`; int4 quantizes it instead of
            converting the model again (the export bundle does this).
        archive: optional, a `step_archive(model, prefill_lengths)` of this
            model, open: converted instead of writing the step functions
            again (the export bundle does this for its variants).
        int4_block_size: for `quantize="int4"`: inputs per int4 block, one
            of `INT4_BLOCK_SIZES`.

    Returns:
        A `TFLiteExport`.

    Raises:
        keras_lm.errors.UsageError (a `ValueError`) naming the bad argument,
        before anything is converted or written.

    Example (not run here: converting takes seconds):

        model = TransformerLM.from_preset("tiny", vocabulary_size=259)
        export_tflite(model, "model.tflite", prefill_lengths=(8,))
    """
    prefill_lengths, representative_ids, path = _check_arguments(
        model, path, prefill_lengths, quantize, representative_ids, from_float32, archive)
    check_int4_block_size(int4_block_size)
    schema, data, int8_info = _converted(
        model, prefill_lengths, quantize, representative_ids, from_float32, archive)
    builtin_operator_names(data)  # raises on a non-builtin operator
    data = fold_slices_of_packs(data)[0]  # a keras-hub cache's stack and slices (see there)
    data = _add_metadata(data, _metadata(model, schema, quantize, int8_info))
    if quantize == "int4":
        # After the metadata: the quantizer keeps it, and may store large
        # weights past the flatbuffer (by offset), which re-serializing the
        # file to add metadata would drop.
        data, int4_info = quantize_int4(data, int4_block_size)
        int8_info = {"int4": int4_info}
    operators = builtin_operator_names(data)
    write_bytes(path, data)
    return TFLiteExport(
        path=path,
        quantize=quantize,
        signatures=schema.signature_names,
        size_bytes=len(data),
        operators=tuple(operators),
        float_operators=tuple(float_operator_names(data)),
        schema=schema,
        **int8_info,
    )


def _check_arguments(model, path, prefill_lengths, quantize, representative_ids,
                     from_float32, archive):
    """`(prefill_lengths, representative_ids, path)` checked; UsageError naming a bad one.

    Runs before anything is converted or written.
    """
    prefill_lengths = check_prefill_lengths(prefill_lengths, model.sequence_length)
    if quantize not in QUANTIZATIONS:
        raise UsageError(
            f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}", argument="quantize"
        )
    if quantize == "int8":
        representative_ids = _check_representative_ids(model, representative_ids)
    elif representative_ids is not None:
        raise UsageError(
            f"representative_ids: only used with quantize='int8', got quantize={quantize!r}",
            argument="representative_ids",
        )
    if from_float32 is not None and quantize != "int4":
        raise UsageError(
            f"from_float32: only used with quantize='int4', got quantize={quantize!r}",
            argument="from_float32",
        )
    if archive is not None and (archive.model is not model
                                or archive.schema.prefill_lengths != prefill_lengths):
        raise UsageError(
            "archive must be a step_archive of this model with prefill_lengths="
            f"{prefill_lengths}, got one with prefill_lengths={archive.schema.prefill_lengths}"
            f"{'' if archive.model is model else ' of another model'}",
            argument="archive",
        )
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"path: directory {directory} does not exist", argument="path")
    return prefill_lengths, representative_ids, path


def _converted(model, prefill_lengths, quantize, representative_ids, from_float32, archive):
    """`(schema, .tflite bytes, int8 info dict)`: the model converted, before its metadata.

    int4 starts from the float32 file (`from_float32`, or converted here) and
    is quantized after the metadata is added (see `export_tflite`).
    """
    if from_float32 is not None:
        # Of the float32 model: float32 state.
        schema = ExportSchema.of(_float32_model(model), prefill_lengths)
        data, int8_info = _float32_source(from_float32, schema), None
    else:
        # The archive given, or one made (and removed) for this file alone.
        with (contextlib.nullcontext(archive) if archive is not None
              else step_archive(model, prefill_lengths)) as archive:
            schema = archive.schema
            data, int8_info = _convert(archive, quantize, representative_ids)
    return schema, data, int8_info or {}


def _metadata(model, schema, quantize, int8_info):
    """The `keras_lm` metadata entry of the file (see the module docstring)."""
    return {
        "format": "keras_lm.tflite",
        "version": 1,
        "family": getattr(model, "family", None),
        "vocabulary_size": schema.vocabulary_size,
        "sequence_length": schema.sequence_length,
        "prefill_lengths": list(schema.prefill_lengths),
        "signatures": list(schema.signature_names),
        "state_names": list(schema.state_names),
        "state": schema.state_entries(),
        "signature_specs": schema.signature_entries(),
        "quantize": quantize,
        **int8_info,
    }


def _float32_source(source, schema):
    """The float32 `.tflite` bytes of `source`, checked against `schema`."""
    data = _model_bytes(source)
    metadata = read_metadata(data) or {}
    if (metadata.get("quantize") != "none"
            or metadata.get("signature_specs") != schema.signature_entries()):
        raise UsageError(
            "from_float32 must be a float32 file exported from this model with these "
            f"prefill_lengths, got one with quantize={metadata.get('quantize')!r} and "
            f"signatures {sorted(metadata.get('signature_specs') or ())}",
            argument="from_float32",
        )
    return data  # `_add_metadata` replaces its metadata with int4's


def _check_representative_ids(model, representative_ids):
    if representative_ids is None or not len(representative_ids):
        raise UsageError(
            "representative_ids: quantize='int8' needs a list of token id arrays to "
            "calibrate on, got none",
            argument="representative_ids",
        )
    texts = []
    for ids in representative_ids:
        ids = np.asarray(ids)
        if ids.ndim != 1 or not ids.size or not np.issubdtype(ids.dtype, np.integer):
            raise UsageError(
                "representative_ids must hold non-empty 1-D integer arrays, got one of "
                f"shape {ids.shape} and dtype {ids.dtype}",
                argument="representative_ids",
            )
        if ids.min() < 0 or ids.max() >= model.vocabulary_size:
            raise UsageError(
                f"representative_ids must be in [0, {model.vocabulary_size}), got "
                f"{int(ids.min())}..{int(ids.max())}",
                argument="representative_ids",
            )
        texts.append(ids[: model.sequence_length].astype(np.int32))
    return texts


def _float32_model(model):
    """`model`, or a float32 copy of it when it computes in another dtype."""
    if model.compute_dtype == "float32" and all(w.dtype == "float32" for w in model.weights):
        return model
    copy = type(model).from_config({**model.get_config(), "dtype": "float32"})
    copy.set_weights([np.asarray(w, np.float32) for w in model.get_weights()])
    return copy


def _step_functions(model, schema):
    """`{signature: (function, input_signature)}` over the model's step API.

    Every signature runs its tokens from `input_pos[0]` over the state it is
    given (so LiteRT-LM's engine may prefill a prompt in chunks, and our
    runner prefills from the zero state at position 0): the model writes
    the keys and values of positions `input_pos[0] + j` into the cache, and
    each query sees the cache up to its own position.
    """

    transposed = {t.name for t in schema.state if t.transposed}

    def swap(tensors):  # (1, length, heads, head_dim) <-> (1, heads, length, head_dim)
        return {name: keras.ops.transpose(x, (0, 2, 1, 3)) if name in transposed else x
                for name, x in tensors.items()}

    def step(tokens, input_pos, state):
        # `_forward_cached` is the step every model defines (`prefill` is it
        # at position 0, `decode` at one token): (batch, time) from a position.
        logits, state = model._forward_cached(
            tokens, schema.model_state(swap(state)), input_pos[0])
        return {"logits": logits, **swap(schema.exported_state(state))}

    functions = {}
    for signature in schema.signature_names:
        specs = schema.tensor_specs(signature, batch_size=1)
        state = {name: specs.pop(name) for name in schema.state_names}
        functions[signature] = step, [*specs.values(), state]
    return functions


def _convert(archive, quantize, representative_ids):
    """The `.tflite` bytes of a `StepArchive` and, for int8, a dict describing the choice made."""
    converter = tf.lite.TFLiteConverter.from_saved_model(
        archive.path, signature_keys=list(archive.functions)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        return _convert_int8(converter, archive.schema, archive.functions, representative_ids)
    return converter.convert(), None  # int4: quantized from float32 by quantize_int4


def _convert_int8(converter, schema, functions, texts):
    """Calibrates once, then picks full int8 or int8 matmuls (see the module doc)."""
    steps = CompiledSteps(functions, schema)

    def samples():
        return _calibration_samples(steps, texts)

    calibrated = calibrate_int8(
        converter, lambda: ((key, inputs) for key, inputs, _ in samples()))
    full = quantize_calibrated(calibrated)
    try:
        full_stats = _agreement(full, samples())
        full_failure = None
    except RuntimeError as error:
        # An int8 kernel may refuse the ranges it was calibrated to (Gemma 3's
        # DIV: `data[i] != zero_point`, a divisor quantized to zero): the
        # full model does not run, so it agrees nowhere.
        full_stats, full_failure = (0.0, None), str(error).splitlines()[0]
    info = {
        "int8_mode": "full",
        "int8_top1_agreement": {"full": full_stats[0]},
        "int8_max_abs_error": {"full": full_stats[1]},
        "int8_fallback_reason": None,
    }
    if full_stats[0] >= INT8_MIN_TOP1_AGREEMENT:
        return full, info
    matmuls = quantize_calibrated(calibrated, INT8_MATMUL_OPS)
    matmul_stats = _agreement(matmuls, samples())
    info["int8_top1_agreement"]["matmuls"] = matmul_stats[0]
    info["int8_max_abs_error"]["matmuls"] = matmul_stats[1]
    if matmul_stats[0] < full_stats[0]:  # no better: keep the smaller, faster one
        return full, info
    info["int8_mode"] = "matmuls"
    full_result = (f"failed to run ({full_failure})" if full_failure else
                   f"agreed with float32 on the top token at {full_stats[0]:.1%} of "
                   f"representative positions (< {INT8_MIN_TOP1_AGREEMENT:.0%})")
    info["int8_fallback_reason"] = (
        f"full int8 {full_result}; int8 activations for {', '.join(INT8_MATMUL_OPS)} "
        f"only: {matmul_stats[0]:.1%}"
    )
    return matmuls, info


def calibrate_int8(converter, representative_dataset):
    """The `.tflite` bytes of `converter`'s model calibrated for int8, not yet quantized.

    `representative_dataset` is the converter's: a function returning an
    iterable of `(signature_key, {input name: array})`. Quantize the result
    with `quantize_calibrated` (once or more: calibration runs once).
    """
    # Selective quantization as `tf.lite.experimental.QuantizationDebugger`
    # does it (`get_nondebug_quantized_model`): calibrate only, then quantize
    # the calibrated model with some operators denylisted. The debugger itself
    # instruments the model and runs `tf.lite.Interpreter` on one signature.
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = representative_dataset
    compat.calibrate_only(converter)
    with warnings.catch_warnings():
        # The calibrator runs the deprecated tf.lite.Interpreter internally.
        warnings.filterwarnings("ignore", r".*tf\.lite\.Interpreter is deprecated", UserWarning)
        return converter.convert()


def quantize_calibrated(calibrated, int8_ops=None):
    """int8 `.tflite` bytes from `calibrate_int8`'s model.

    `int8_ops`: the operator names that get int8 activations (e.g.
    `INT8_MATMUL_OPS`); None: every operator with an int8 builtin kernel but
    `INT8_FLOAT_OPS`.
    Inputs and outputs keep their float32 (int32) types.
    """
    names = operator_names(calibrated)
    if int8_ops is None:
        denied = [op for op in names if op in INT8_FLOAT_OPS]
        return compat.quantize_calibrated_model(calibrated, denylisted_ops=denied or None)
    denied = [op for op in names if op not in int8_ops]
    return compat.quantize_calibrated_model(calibrated, denylisted_ops=denied)


def check_int4_block_size(block_size):
    """`block_size` if it is one of `INT4_BLOCK_SIZES`; else UsageError naming it."""
    if block_size not in INT4_BLOCK_SIZES:
        raise UsageError(
            f"int4_block_size must be one of {', '.join(map(str, INT4_BLOCK_SIZES))}, "
            f"got {block_size!r}", argument="int4_block_size")
    return block_size


def quantize_int4(data, block_size=INT4_BLOCK_SIZE):
    """`(bytes, info)`: the float32 `.tflite` `data` with int4 weights.

    ai-edge-quantizer's dynamic recipe: the `FULLY_CONNECTED` projections
    get symmetric int4 weights in blocks of `block_size` inputs (channel-wise
    when it is 0, or when a weight's input dimension is no multiple of it),
    and activations are quantized on the fly. The token lookups are first
    rewritten from `GATHER` to `EMBEDDING_LOOKUP`
    (`tflite_rewrites.token_lookups_as_embedding_lookups`), so the token
    table becomes one quantized table that the lookups and a tied head's
    logits read: int8 channel-wise (`TOKEN_TABLE_BITS`).
    `data` must carry the `keras_lm` metadata (its vocabulary size). `info`
    names the int4 weights and the float ones left (the position table).
    """
    from ai_edge_quantizer import qtyping, quantizer

    vocabulary_size = (read_metadata(data) or {}).get("vocabulary_size")
    data, lookups = token_lookups_as_embedding_lookups(data, vocabulary_size)

    table_scopes = token_table_scopes(data)

    def run(granularity):
        q = quantizer.Quantizer(bytearray(data))
        q.add_dynamic_config(
            regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=4,
            granularity=qtyping.QuantGranularity[granularity],
        )
        for scope in table_scopes:  # the later, narrower config wins for these ops
            q.add_dynamic_config(
                regex=f"^{re.escape(scope)}$",
                operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                num_bits=TOKEN_TABLE_BITS, granularity=qtyping.QuantGranularity.CHANNELWISE)
        return bytes(q.quantize(enable_progress_report=False, enable_progress_bar=False)
                     .quantized_model)

    granularity = f"BLOCKWISE_{check_int4_block_size(block_size)}" if block_size else "CHANNELWISE"
    try:
        quantized = run(granularity)
    except ValueError:  # an input dimension no multiple of the block
        granularity = "CHANNELWISE"
        quantized = run(granularity)
    weights = constant_tensors(quantized)
    return quantized, {
        "granularity": granularity,
        "embedding_lookups": lookups,
        "int4_weights": sorted(name for name, (kind, _) in weights.items() if kind == "INT4"),
        "float_weights": {name: shape for name, (kind, shape) in sorted(weights.items())
                          if kind == "FLOAT32" and np.prod(shape) >= 256},
    }


def token_table_scopes(data):
    """ai-edge-quantizer's scopes (output names + ";") of the ops that read a token table:
    each `EMBEDDING_LOOKUP`, and each `FULLY_CONNECTED` whose weight is such a
    table (a tied head's logits)."""
    operators = list(_operators(_root(_model_bytes(data))))
    # Buffers belong to the file, not a subgraph: one table serves every signature.
    tables = {graph.Tensors(op.Inputs(1)).Buffer()
              for graph, op, name in operators if name == "EMBEDDING_LOOKUP"}
    return [";".join(graph.Tensors(op.Outputs(i)).Name().decode()
                     for i in range(op.OutputsLength())) + ";"
            for graph, op, name in operators
            if name == "EMBEDDING_LOOKUP" or (
                name == "FULLY_CONNECTED"
                and graph.Tensors(op.Inputs(1)).Buffer() in tables)]


def constant_tensors(data):
    """`{name: (type name, shape)}` of the constant tensors (weights) of a `.tflite` file
    (its path or bytes)."""
    from ai_edge_litert import schema_py_generated as schema

    data = _model_bytes(data)
    root = schema.Model.GetRootAs(data, 0)
    types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    found = {}
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            tensor = subgraph.Tensors(t)
            buffer = root.Buffers(tensor.Buffer())
            if tensor.Buffer() > 0 and (buffer.DataLength() > 0 or buffer.Size() > 0):
                found[tensor.Name().decode()] = (types.get(tensor.Type()),
                                                 [int(d) for d in tensor.ShapeAsNumpy()])
    return found


def _agreement(data, samples):
    """Top-1 agreement and max |logit error| of a `.tflite` model vs the float model."""
    from ai_edge_litert.interpreter import Interpreter  # native library: loaded for int8 only

    interpreter = Interpreter(model_content=data)
    runners = {}
    agree = total = 0
    worst = 0.0
    for key, inputs, expected in samples:
        if key not in runners:
            runners[key] = interpreter.get_signature_runner(key)
        logits = runners[key](**inputs)["logits"]
        agree += int((logits.argmax(-1) == expected.argmax(-1)).sum())
        total += expected[..., 0].size
        worst = max(worst, float(np.abs(logits - expected).max()))
    return round(agree / total, 4), round(worst, 6)


class CompiledSteps:
    """The step functions compiled by TensorFlow, driven like a `LiteRTRunner`.

    `prefill` and `decode` take and return NumPy arrays as the runner's do,
    so `litert_runner.run_prompt` drives them; each call also keeps its
    `(signature, inputs, logits)` in `last`, the calibrator's sample.
    `prefill_lengths` is empty: calibration runs each prefill on its own and
    decodes every position from the zero state.
    """

    prefill_lengths = ()

    def __init__(self, functions, schema):
        self.schema = schema
        self.compiled = {
            key: tf.function(function, input_signature=signature)
            for key, (function, signature) in functions.items()
        }
        self.last = None

    def initial_state(self):
        return self.schema.zero_state()

    def prefill(self, token_ids):
        token_ids = np.asarray(token_ids, np.int32).reshape(1, -1)
        key, state = f"prefill_{token_ids.shape[1]}", self.initial_state()
        positions = np.arange(token_ids.shape[1], dtype=np.int32)
        return self._run(key, {"tokens": token_ids, "input_pos": positions}, state)

    def decode(self, token_id, state, position):
        inputs = {
            "tokens": np.array([[token_id]], np.int32),
            "input_pos": np.array([position], np.int32),
        }
        logits, state = self._run("decode", inputs, state)
        return logits[:, 0], state

    def _run(self, key, inputs, state):
        outputs = self.compiled[key](*inputs.values(), state)
        logits = outputs["logits"].numpy()
        self.last = key, {**inputs, **state}, logits
        return logits, {name: outputs[name].numpy() for name in self.schema.state_names}


def _calibration_samples(steps, texts):
    """Yields `(signature, inputs, float32 logits)` for the int8 calibrator.

    Each text runs every `prefill_N` from the zero state (a text shorter
    than `N` is repeated to length `N`), and `decode` over its positions
    with the state the model itself produced (`run_prompt` with no
    prefill), up to `CALIBRATION_DECODE_STEPS` positions over all texts.
    Computed afresh on each pass, so no more than one state is held at a time.
    """
    for ids in texts:
        for n in steps.schema.prefill_lengths:
            steps.prefill(np.resize(ids, n))
            yield steps.last
    count = max(1, CALIBRATION_DECODE_STEPS // len(texts))
    for ids in texts:
        for _ in run_prompt(steps, ids[:count]):
            yield steps.last


def _add_metadata(data, metadata):
    """`data` with a `keras_lm` metadata entry holding `metadata` as JSON (None: no entry).

    An entry already there is dropped (its buffer emptied) first.
    """
    # Converter internals (the flatbuffer schema), imported only when writing a file.
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    kept = []
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            model.buffers[entry.buffer].data = None
        else:
            kept.append(entry)
    model.metadata = kept
    if metadata is None:
        return flatbuffer_utils.convert_object_to_bytearray(model)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    return flatbuffer_utils.convert_object_to_bytearray(model)
