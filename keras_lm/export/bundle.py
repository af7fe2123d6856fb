"""Export a trained model for deployment: a SavedModel and a LiteRT bundle, verified.

`export(model, tokenizer, directory)` writes, under `directory`:

- `saved_model/`: for servers (see `keras_lm.export.saved_model`);
- `tflite/`: for phones, the bundle an app ships:
  - `model_{variant}.tflite`, one per quantization (`float32`, `fp16`,
    `dynamic_int8`, `int8`), see `keras_lm.export.tflite`;
  - `tokenizer.json`: the tokenizer in plain JSON (no TensorFlow needed,
    see `keras_lm.export.json_tokenizer.JsonTokenizer`), and for
    SentencePiece also `tokenizer.model` (its own format);
  - `metadata.json`: vocabulary size, special ids, the prompt template
    (`prompt_template`: a format string with one `{prompt}` field that an
    app puts each prompt through, or null), sequence length (as
    `sequence_length`, and as `context_length` for the apps that read that
    name), the signatures with every input and output (name, shape,
    dtype) and the state tensors (both from `keras_lm.export.schema`), and
    per file its quantization, size, operators and the parity figures
    measured at export (`keras_lm.export.verify`);
- `litertlm/` (only when `formats` names `litertlm`, which also writes
  `tflite/`, its source): `model_{variant}.litertlm` per variant, the file
  Google's LiteRT-LM engine loads (`keras_lm.export.litertlm`); the
  engine's greedy text is checked against Keras' and recorded in
  `tflite/metadata.json` (`files[variant]["litertlm"]`).

Each part is written atomically: `saved_model/` and `tflite/` are built
under temporary names and renamed into place whole, so a failed export
leaves the previous ones (or nothing) and `tflite/` always holds exactly
the variants of one export.

Example (not run here: converting takes a minute):

    model, tokenizer, config = keras_lm.load_model_dir("saved_models/quickstart")
    report = export(model, tokenizer, "saved_models/quickstart",
                    quantize=("none", "fp16"), validation_files=["notes.txt"])
    report["files"]["fp16"]["parity"]["perplexity_change"]
"""

import contextlib
import os

import numpy as np

from keras_lm.data import EncodedPairs, pair_windows, sample_windows
from keras_lm.errors import UsageError
from keras_lm.export.hf_tokenizer import sentencepiece_proto
from keras_lm.export.litertlm import (
    LITERTLM_DIR,
    check_expressible,
    litertlm_file_name,
    write_litertlm,
)
from keras_lm.export.saved_model import export_saved_model
from keras_lm.export.schema import check_prefill_lengths
from keras_lm.export.tflite import (
    INT4_BLOCK_SIZE,
    QUANTIZATIONS,
    check_int4_block_size,
    export_tflite,
    step_archive,
)
from keras_lm.export.verify import check_parity, measure_parity
from keras_lm.io_utils import atomic_path, write_bytes, write_json
from keras_lm.tokenizers import TOKENIZER_FILE

# The default formats; `litertlm` is asked for by name (an LSTM or a task
# run cannot be one, and it needs LiteRT-LM's packages).
FORMATS = ("saved_model", "tflite")
ALL_FORMATS = FORMATS + ("litertlm",)
VARIANTS = {"none": "float32", "fp16": "fp16", "dynamic_int8": "dynamic_int8", "int8": "int8",
            "int4": "int4"}
SAVED_MODEL_DIR = "saved_model"
TFLITE_DIR = "tflite"
METADATA_FILE = "metadata.json"
# SentencePiece's own format, beside tokenizer.json, for its app libraries.
SENTENCEPIECE_FILE = "tokenizer.model"
DEFAULT_PREFILL_LENGTHS = (8, 32)
# Texts from the training files that calibrate int8 ranges.
CALIBRATION_TEXTS = 8
# Validation windows (of the longest prefill length) for perplexity.
VALIDATION_WINDOWS = 64


class VerificationError(RuntimeError):
    """An exported file missed a parity bound (`export(..., verify=True)`)."""


def tflite_file_name(quantize):
    """`model_{variant}.tflite`: `model_float32.tflite` for `quantize="none"`."""
    return f"model_{VARIANTS[quantize]}.tflite"


def export(
    model,
    tokenizer,
    directory,
    *,
    formats=FORMATS,
    quantize=("none",),
    prefill_lengths=DEFAULT_PREFILL_LENGTHS,
    calibration_files=None,
    validation_files=None,
    verify=False,
    int4_block_size=INT4_BLOCK_SIZE,
):
    """Writes the formats in `formats` under `directory`; returns the report.

    Args:
        model, tokenizer: a trained model and its tokenizer.
        directory: where `saved_model/` and `tflite/` go (must exist).
        formats: some of `FORMATS`.
        quantize: the TFLite variants, some of `QUANTIZATIONS`.
        prefill_lengths: prompt lengths with a `prefill_{N}` TFLite signature.
        calibration_files: text files (training text) that calibrate `int8`.
        validation_files: text files for the perplexity figures; without
            them parity is measured on logits and greedy tokens only. Either
            may also be a pair run's `keras_lm.data.EncodedPairs` (its
            pairs laid end to end, as trained).
        int4_block_size: inputs per block of `int4` weights (32, 64, 128, 256; 0: channel-wise).
        verify: raise `VerificationError` if a bound of
            `keras_lm.export.verify.check_parity` is missed (after writing,
            so the files can be inspected).

    Returns:
        The metadata dict (also written to `tflite/metadata.json`), with
        `saved_model_parity` and `failures` added.
    """
    formats, quantize, prefill_lengths = _checked_arguments(
        model, tokenizer, directory, formats, quantize, prefill_lengths, int4_block_size)
    calibration = None
    if "tflite" in formats and "int8" in quantize:
        if not calibration_files:
            raise UsageError(
                "quantize: int8 needs training text to calibrate on (calibration_files), got none",
                argument="quantize",
            )
        calibration = _windows(calibration_files, tokenizer, model.sequence_length,
                               CALIBRATION_TEXTS, "calibration_files")
    window_length = max(prefill_lengths) if "tflite" in formats else 32
    windows = [] if not validation_files else _windows(
        validation_files, tokenizer, window_length, VALIDATION_WINDOWS, "validation_files")
    prompts = verification_prompts(model, tokenizer, windows, prefill_lengths)

    saved_model = os.path.join(directory, SAVED_MODEL_DIR)
    if "saved_model" in formats:
        export_saved_model(model, tokenizer, saved_model)
    report = {"saved_model_parity": None}
    if "tflite" in formats:
        with atomic_path(os.path.join(directory, TFLITE_DIR)) as bundle:
            os.makedirs(bundle)
            report = _write_bundle(
                model, tokenizer, bundle, quantize, prefill_lengths, calibration, prompts,
                windows, saved_model if "saved_model" in formats else None,
                os.path.join(directory, LITERTLM_DIR) if "litertlm" in formats else None,
                int4_block_size,
            )
    else:
        parity = measure_parity(model, tokenizer, prompts, saved_model=saved_model)
        report["saved_model_parity"] = parity["saved_model"]
        report["failures"] = check_parity(parity)
    if verify and report["failures"]:
        raise VerificationError("; ".join(report["failures"]))
    return report


def _checked_arguments(model, tokenizer, directory, formats, quantize, prefill_lengths,
                       int4_block_size):
    """`(formats, quantize, prefill_lengths)` checked (a `.litertlm` adds its source, tflite)."""
    formats = _check_choices("formats", formats, ALL_FORMATS)
    quantize = _check_choices("quantize", quantize, QUANTIZATIONS)
    if "litertlm" in formats:
        check_expressible(model, tokenizer, "formats")
        formats = tuple(dict.fromkeys([*formats, "tflite"]))  # its source
    if "tflite" in formats:
        prefill_lengths = check_prefill_lengths(prefill_lengths, model.sequence_length)
        check_int4_block_size(int4_block_size)
    if not os.path.isdir(directory):
        raise UsageError(f"directory: {directory!r} does not exist", argument="directory")
    return formats, quantize, prefill_lengths


def _write_bundle(model, tokenizer, bundle, quantize, prefill_lengths, calibration, prompts,
                  windows, saved_model, litertlm_dir=None, int4_block_size=INT4_BLOCK_SIZE):
    files, schema = {}, None
    # The step functions traced and written once, converted to each variant
    # (tracing and writing them cost more than a conversion).
    with step_archive(model, prefill_lengths) as archive:
        for q in quantize:
            # int4 quantizes the float32 file when it is written already (no second conversion).
            float32 = files.get("float32") if q == "int4" else None
            info = export_tflite(
                model, os.path.join(bundle, tflite_file_name(q)), prefill_lengths, q,
                representative_ids=calibration if q == "int8" else None,
                int4_block_size=int4_block_size,
                **({"from_float32": os.path.join(bundle, float32["file"])} if float32
                   else {"archive": archive}),
            )
            schema = info.schema  # the same for every variant
            files[VARIANTS[q]] = _file_entry(info, q)
    with contextlib.ExitStack() as stack:
        litertlm = {}
        if litertlm_dir is not None:
            # Built beside tflite/ under a temporary name, renamed when both are whole.
            written = stack.enter_context(atomic_path(litertlm_dir))
            os.makedirs(written)
            texts = [tokenizer.decode_text(np.asarray(w, np.int32)) for w in windows[:8]]
            for variant, f in files.items():
                path = os.path.join(written, litertlm_file_name(variant))
                size = write_litertlm(
                    os.path.join(bundle, f["file"]), path, tokenizer, schema.sequence_length,
                    getattr(tokenizer, "prompt_template", None), check_texts=texts,
                )
                f["litertlm"] = {"file": f"{LITERTLM_DIR}/{os.path.basename(path)}",
                                 "size_bytes": size}
                litertlm[variant] = path
        parity = measure_parity(
            model, tokenizer, prompts, windows, saved_model=saved_model,
            tflite={v: os.path.join(bundle, f["file"]) for v, f in files.items()},
            litertlm=litertlm,
        )
        for variant, figures in parity["tflite"].items():
            files[variant]["parity"] = figures
        for variant, figures in parity.get("litertlm", {}).items():
            files[variant]["litertlm"]["engine_parity"] = figures
        report = _bundle_metadata(model, tokenizer, bundle, schema, files, parity)
    return report


def _file_entry(info, q):
    """The `files` entry of the metadata for the `TFLiteExport` `info` of variant `q`."""
    return {
        "file": os.path.basename(info.path),
        "quantize": q,
        "size_bytes": info.size_bytes,
        "operators": list(info.operators),
        "float_operators": list(info.float_operators),
        **({} if q != "int8" else {
            "int8_mode": info.int8_mode,
            "int8_top1_agreement": info.int8_top1_agreement,
            "int8_fallback_reason": info.int8_fallback_reason,
        }),
        **({} if q != "int4" else {"int4": info.int4}),
    }


def _bundle_metadata(model, tokenizer, bundle, schema, files, parity):
    tokenizer.save(os.path.join(bundle, TOKENIZER_FILE))
    proto = sentencepiece_proto(tokenizer)  # a sentencepiece run's, or an imported Gemma's
    if proto:
        write_bytes(os.path.join(bundle, SENTENCEPIECE_FILE), proto)
    metadata = {
        "format": "keras_lm.litert_bundle",
        "version": 1,
        "family": getattr(model, "family", None),
        "vocabulary_size": schema.vocabulary_size,
        # The same number under both names: the tflite metadata's, and the
        # name apps written against the first bundles read.
        "sequence_length": schema.sequence_length,
        "context_length": schema.sequence_length,
        "special_ids": dict(tokenizer.special_ids),
        "tokenizer": TOKENIZER_FILE,
        # Prompts go through it before tokenizing (keras_lm.prompt_template):
        # a format string with one {prompt} field, or null (as they are).
        "prompt_template": getattr(tokenizer, "prompt_template", None),
        "prefill_lengths": list(schema.prefill_lengths),
        "signatures": schema.signature_entries(),
        "state": schema.state_entries(),
        "files": files,
        "parity_setup": {k: parity[k] for k in ("prompts", "greedy_tokens", "windows",
                                                "window_tokens")},
        "saved_model_parity": parity.get("saved_model"),
        "failures": check_parity(parity),
    }
    write_json(os.path.join(bundle, METADATA_FILE), metadata)
    return metadata


def verification_prompts(model, tokenizer, windows, prefill_lengths):
    """Prompt id lists (`<bos>` first) that exercise every path of the runner.

    Lengths: `<bos>` alone (no prefill fits), the shortest prefill plus a
    few forced decodes, and the longest prefill plus some; at most half the
    context, so greedy continuations have room. Texts come from the
    validation windows (made valid text first, so that the SavedModel's
    text-in path sees the same ids), else fixed strings.
    """
    limit = model.sequence_length // 2
    lengths = sorted({1, min(limit, min(prefill_lengths) + 3), min(limit, max(prefill_lengths) + 5)})
    texts = [tokenizer.decode_text(w) for w in windows[: len(lengths)]]
    texts += ["The quick brown fox jumps over the lazy dog. " * 8] * (len(lengths) - len(texts))
    prompts = []
    for text, length in zip(texts, lengths):
        ids = [tokenizer.bos_id] + [int(i) for i in tokenizer.encode(text).numpy()][: length - 1]
        text = tokenizer.decode_text(np.array(ids[1:], np.int32))
        prompts.append([tokenizer.bos_id] + [int(i) for i in tokenizer.encode(text).numpy()])
    return prompts


def _windows(source, tokenizer, length, count, argument):
    """Windows of `length + 1` tokens: from text files, or from a pair run's encoded pairs."""
    if isinstance(source, EncodedPairs):
        return pair_windows(source, length, count)
    return sample_windows(source, tokenizer, length, count, argument=argument)


def _check_choices(argument, values, choices):
    values = [values] if isinstance(values, str) else list(values)
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise UsageError(
            f"{argument} must be some of {', '.join(choices)}, got "
            f"{', '.join(map(str, values)) or 'none'}",
            argument=argument,
        )
    return tuple(dict.fromkeys(values))
