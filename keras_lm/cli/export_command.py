"""keras-lm export: a trained model as a SavedModel (servers) and LiteRT files (phones).

Writes MODEL_DIR/saved_model/ and MODEL_DIR/tflite/ (model_{variant}.tflite,
tokenizer.json, metadata.json with the parity figures measured against the
Keras model), then prints a table of those figures.

Examples:
  keras-lm export --model_dir=saved_models/quickstart
  keras-lm export --format=tflite --quantize=none,int8 --verify
  keras-lm export --format=litertlm --quantize=none,int4 --verify

--format=litertlm (asked for by name) also writes MODEL_DIR/litertlm/
model_{variant}.litertlm, the file Google's LiteRT-LM engine runs (built
from tflite/, which it writes too); --verify then also runs the engine and
fails when its greedy text differs from Keras' at float32.
  keras-lm generate --model=saved_models/quickstart/tflite/model_fp16.tflite --prompt='def '

--verify fails (exit code 1) when a bound is missed: float32 files within
1e-4 of Keras' logits with identical greedy tokens; fp16 and dynamic_int8
within +2% validation perplexity, int4 within +5%.

A classifier run (`keras-lm finetune --head=classifier`) exports its own way
(keras_lm.export.classifier_export): a SavedModel whose serving_default takes
texts and returns the label and the probabilities, and LiteRT files with a
`classify` signature (token ids -> probabilities), the labels in
metadata.json; parity on the run's validation texts (float32: 1e-4 and the
same labels; quantized files, int8 included: the same label on >= 95%). int8
calibrates on the run's training texts (its validation texts when the
training data is not readable; metadata.json says which).
"""

import contextlib
import sys

from absl import flags

from keras_lm.cli.app import run_subcommand
from keras_lm.errors import UsageError
from keras_lm.export.bundle import (
    ALL_FORMATS,
    DEFAULT_PREFILL_LENGTHS,
    FORMATS,
    VerificationError,
)
from keras_lm.export.tflite import (  # for the flags' help
    INT4_BLOCK_SIZE,
    INT4_BLOCK_SIZES,
    QUANTIZATIONS,
)
from keras_lm.run import Run

FLAGS = flags.FlagValues()
VERIFICATION_FAILED = 1

flags.DEFINE_string(
    "model_dir", "saved_models/quickstart", "A `keras-lm train` output directory.",
    flag_values=FLAGS)
flags.DEFINE_list(
    "format", list(FORMATS),
    f"Formats to write, some of {', '.join(ALL_FORMATS)} (litertlm: only when named).",
    flag_values=FLAGS)
flags.DEFINE_list(
    "quantize", ["none", "fp16", "dynamic_int8"],
    f"TFLite variants, some of {', '.join(QUANTIZATIONS)} (int8 calibrates on training text; "
    "int4: block-wise int4 matmul weights).",
    flag_values=FLAGS)
flags.DEFINE_list(
    "prefill_lengths", [str(n) for n in DEFAULT_PREFILL_LENGTHS],
    "Prompt lengths with a TFLite prefill_N signature.", flag_values=FLAGS)
flags.DEFINE_string(
    "data_files", None,
    "Text (files, directories or globs) for int8 calibration and the perplexity figures "
    "(default: the run's own training and validation files).", flag_values=FLAGS)
flags.DEFINE_integer(
    "int4_block_size", INT4_BLOCK_SIZE,
    f"Inputs per block of the int4 weights, one of {', '.join(map(str, INT4_BLOCK_SIZES))} "
    "(0: channel-wise, one scale per output channel).",
    flag_values=FLAGS)
flags.DEFINE_boolean(
    "verify", False, "Exit 1 if a file misses a parity bound.", flag_values=FLAGS)


def main():
    prefill_lengths = []
    for value in FLAGS.prefill_lengths:
        try:
            prefill_lengths.append(int(value))
        except ValueError:
            raise UsageError(f"--prefill_lengths must be integers, got {value!r}") from None
    run = Run(FLAGS.model_dir)
    given = {name: value for name, value in (
        ("prefill_lengths", prefill_lengths if FLAGS["prefill_lengths"].present else None),
        ("data_files", FLAGS.data_files),
        ("int4_block_size", FLAGS.int4_block_size if FLAGS["int4_block_size"].present else None),
    ) if value is not None}
    with _export_errors():
        report = run.export(formats=FLAGS.format, quantize=FLAGS.quantize, verify=FLAGS.verify,
                            **given)
    print(format_classifier_report(report) if run.kind == "classifier" else
          format_report(report))


@contextlib.contextmanager
def _export_errors():
    """An exporter's `UsageError` in flag words; a failed verification: its exit code."""
    try:
        yield
    except UsageError as error:
        flag = _FLAG_OF_ARGUMENT.get(error.argument)
        if flag is None:
            raise
        raise UsageError(error.spelled_as(flag)) from None
    except VerificationError as error:
        print(f"keras-lm export: verification failed: {error}", file=sys.stderr)
        sys.exit(VERIFICATION_FAILED)


def format_classifier_report(report):
    """A classifier export's parity figures as a plain-text table."""
    lines = [f"{'file':<34} {'size':>10} {'max|dprob|':>11} {'labels':>7}"]
    rows = [("saved_model/", None, report.get("saved_model_parity"))]
    rows += [(f"tflite/{f['file']}", f["size_bytes"], f["parity"]) for f in report["files"].values()]
    for name, size, parity in rows:
        if parity:
            size = f"{size / 1024:.0f} KB" if size else "-"
            lines.append(f"{name:<34} {size:>10} {parity['max_abs_probability_diff']:>11.2e} "
                         f"{parity['label_agreement']:>7.0%}")
    lines += [f"FAILED: {failure}" for failure in report["failures"]]
    return "\n".join(lines)


# The library names its arguments (UsageError.argument); the user typed these flags.
_FLAG_OF_ARGUMENT = {
    "formats": "--format",
    "quantize": "--quantize",
    "prefill_lengths": "--prefill_lengths",
    "int4_block_size": "--int4_block_size",
    "calibration_files": "--data_files",
    "validation_files": "--data_files",
    "directory": "--model_dir",
    "data_files": "--data_files",
}


def format_report(report):
    """The parity figures as a plain-text table."""
    lines = [f"{'file':<34} {'size':>10} {'max|dlogit|':>12} {'greedy':>7} {'ppl change':>11}"]
    saved = report.get("saved_model_parity")
    if saved:
        lines.append(_row("saved_model/", None, saved))
    for figures in report.get("files", {}).values():
        lines.append(_row(f"tflite/{figures['file']}", figures["size_bytes"], figures["parity"]))
        if "litertlm" in figures:
            engine = figures["litertlm"].get("engine_parity", {})
            agreement = engine.get("greedy_agreement")
            lines.append(f"{figures['litertlm']['file']:<34} "
                         f"{figures['litertlm']['size_bytes'] / 1024:>7.0f} KB {'(engine)':>12} "
                         f"{'-' if agreement is None else format(agreement, '.0%'):>7} {'-':>11}")
    lines += [f"FAILED: {failure}" for failure in report["failures"]]
    return "\n".join(lines)


def _row(name, size, parity):
    size = f"{size / 1024:.0f} KB" if size else "-"
    change = parity.get("perplexity_change")
    change = f"{change:+.2%}" if change is not None else "-"
    return (
        f"{name:<34} {size:>10} {parity['max_abs_logit_diff']:>12.2e} "
        f"{parity['greedy_agreement']:>7.0%} {change:>11}"
    )


def run(argv):
    run_subcommand(main, FLAGS, argv, __name__, __doc__)
