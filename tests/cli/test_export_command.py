"""`keras-lm export` and `keras-lm generate --model` on a real tiny training run.

The run is exported once for this file and tests/export/test_litertlm.py (conftest's
`exported_run`).
"""

import json
import shutil

import pytest

from conftest import assert_one_line_usage_error, run_in_process


@pytest.fixture(scope="module")
def exported(exported_run):
    """The tiny run exported by `keras-lm export` (conftest: every format, float32 and
    int4, verified): `(directory, stdout)`."""
    return exported_run


def test_export_writes_both_formats_and_prints_the_parity_table(exported):
    directory, stdout = exported
    assert (directory / "saved_model" / "saved_model.pb").is_file()
    assert sorted(p.name for p in (directory / "tflite").iterdir()) == [
        "metadata.json", "model_float32.tflite", "model_int4.tflite", "tokenizer.json"]
    metadata = json.loads((directory / "tflite" / "metadata.json").read_text())
    assert metadata["failures"] == []
    # The run's own validation file (from config.json) gave the perplexity figures.
    assert metadata["parity_setup"]["windows"] > 0
    assert "perplexity_change" in metadata["files"]["int4"]["parity"]
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["file", "size", "max|dlogit|", "greedy", "ppl", "change"]
    assert [line.split()[0] for line in lines[1:]] == [
        "saved_model/",
        "tflite/model_float32.tflite", "litertlm/model_float32.litertlm",
        "tflite/model_int4.tflite", "litertlm/model_int4.litertlm"]


def test_generate_with_exported_files_gives_the_keras_text(capsys, exported):
    directory, _ = exported
    args = ["generate", "--prompt=the quick", "--max_new_tokens=12"]
    code, expected, err = run_in_process(capsys, *args, f"--model_dir={directory}")
    assert code == 0, err
    assert expected.startswith("the quick") and len(expected) > len("the quick\n")
    for model in ("tflite/model_float32.tflite", "saved_model"):
        code, out, err = run_in_process(capsys, *args, f"--model={directory / model}")
        assert code == 0, err
        assert out == expected, model


@pytest.mark.slow  # two more conversions; the shared export makes float32 and int4
def test_fp16_files_export_verified_and_generate_the_keras_text(capsys, trained, tmp_path):
    directory = tmp_path / "run"
    shutil.copytree(trained[0], directory)
    code, _, err = run_in_process(capsys, "export", f"--model_dir={directory}",
                                  "--format=tflite,litertlm", "--quantize=fp16", "--verify")
    assert code == 0, err
    metadata = json.loads((directory / "tflite" / "metadata.json").read_text())
    assert metadata["failures"] == []
    assert "perplexity_change" in metadata["files"]["fp16"]["parity"]
    assert (directory / "litertlm" / "model_fp16.litertlm").is_file()
    args = ["generate", "--prompt=the quick", "--max_new_tokens=12"]
    _, expected, _ = run_in_process(capsys, *args, f"--model_dir={directory}")
    code, out, err = run_in_process(capsys, *args,
                                    f"--model={directory / 'tflite' / 'model_fp16.tflite'}")
    assert code == 0, err
    assert out == expected


def test_generate_samples_from_a_tflite_file(capsys, exported):
    directory, _ = exported
    args = ["generate", f"--model={directory / 'tflite' / 'model_int4.tflite'}", "--prompt=the",
            "--num_samples=3", "--top_p=0.9", "--temperature=1.5", "--max_new_tokens=16", "--seed=5"]
    (code, first, err), (_, again, _) = run_in_process(capsys, *args), run_in_process(capsys, *args)
    assert code == 0, err
    assert first == again  # seeded
    samples = first.split("--- sample ")[1:]
    assert len(samples) == 3 and len(set(samples)) > 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--format=onnx"], "--format must be some of saved_model, tflite, litertlm, got onnx"),
        (["--quantize=fp16,int2"],
         "--quantize must be some of none, fp16, dynamic_int8, int8, int4, got fp16, int2"),
        (["--prefill_lengths=8,x"], "--prefill_lengths must be integers, got 'x'"),
        (["--prefill_lengths=8,33"], "--prefill_lengths must be in [1, sequence_length=32], got [33]"),
        (["--quantize=int8", "--data_files=/no/such/*.txt"], "--data_files: no file matches"),
    ],
)
def test_bad_export_flags_are_one_line_errors(capsys, exported, flags, message):
    directory, _ = exported
    before = sorted(p.name for p in (directory / "tflite").iterdir())
    code, _, err = run_in_process(capsys, "export", f"--model_dir={directory}", *flags)
    assert_one_line_usage_error(code, err, "export", message)
    assert sorted(p.name for p in (directory / "tflite").iterdir()) == before


def test_export_needs_a_model_and_int8_needs_readable_text(capsys, trained, tmp_path):
    code, _, err = run_in_process(capsys, "export", f"--model_dir={tmp_path}")
    assert_one_line_usage_error(code, err, "export", "--model_dir: no model.keras in")
    # A run whose training files are gone: int8 has nothing to calibrate on.
    output, _, _ = trained
    moved = tmp_path / "run"
    shutil.copytree(output, moved)
    config = json.loads((moved / "config.json").read_text())
    config["train_files"] = str(tmp_path / "gone" / "*.txt")
    (moved / "config.json").write_text(json.dumps(config))
    code, _, err = run_in_process(capsys, "export", f"--model_dir={moved}", "--quantize=int8")
    assert_one_line_usage_error(code, err, "export", "--quantize=int8 needs training text")
    assert err.strip().endswith("pass data_files")  # the library's argument, the flag's name
    assert not (moved / "saved_model").exists() and not (moved / "tflite").exists()


def test_generate_model_errors_are_one_line(capsys, exported, tmp_path):
    directory, _ = exported
    corrupt = tmp_path / "bundle" / "model.tflite"
    corrupt.parent.mkdir()
    corrupt.write_bytes(b"not a flatbuffer at all")
    shutil.copy(directory / "tflite" / "tokenizer.json", corrupt.parent)
    lonely = tmp_path / "lonely.tflite"
    shutil.copy(directory / "tflite" / "model_int4.tflite", lonely)
    (tmp_path / "empty").mkdir()
    model = directory / "tflite" / "model_float32.tflite"
    cases = [
        ([f"--model={tmp_path / 'missing.tflite'}"], "--model: '"),
        ([f"--model={corrupt}"], "as a LiteRT model (not a .tflite file"),
        ([f"--model={lonely}"], "--model: no tokenizer.json beside"),
        ([f"--model={tmp_path / 'empty'}"], "as a SavedModel"),
        ([f"--model={directory}"], "is a training output directory"),
        ([f"--model={model}", "--beam_width=2"], "exported models have no beam search"),
        ([f"--model={model}", "--max_new_tokens=40"], "room for 1..30 new tokens"),
        ([f"--model={model}", f"--model_dir={directory}"], "--model and --model_dir: give one"),
    ]
    for flags, message in cases:
        code, _, err = run_in_process(capsys, "generate", "--prompt=a", *flags)
        assert_one_line_usage_error(code, err, "generate", message)
