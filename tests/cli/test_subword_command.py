"""Subword tokenizers through the command line: train, eval, generate, export, run the export."""

import json
import math

import pytest

from conftest import TINY, assert_one_line_usage_error, run_in_process, write_corpus


@pytest.fixture(scope="module")
def subword_run(tmp_path_factory):
    """A tiny SentencePiece run on a corpus where one file holds invalid UTF-8."""
    root = tmp_path_factory.mktemp("subword_run")
    files = write_corpus(str(root / "corpus"), num_files=5, lines=120)
    bad = root / "corpus" / "latin1.txt"
    bad.write_bytes("the caf\xe9 and the na\xefve fox.\n".encode("latin-1") * 40)
    return root, files + [str(bad)]


@pytest.mark.slow  # minutes on 2 cores: run with `pytest -m slow`
def test_sentencepiece_trains_evaluates_generates_and_exports(capsys, subword_run):
    root, files = subword_run
    output = root / "out"
    code, out, err = run_in_process(
        capsys, "train", *TINY, "--tokenizer=sentencepiece", "--vocab_size=300",
        "--normalize=nfkc", "--nohistograms", "--noattention_maps", "--noembedding_projector",
        f"--train_files={','.join(files[:4] + files[5:])}", f"--val_files={files[4]}",
        f"--output_dir={output}",
    )
    assert code == 0, err
    # Reported once, naming the file, and training went on.
    warnings = [line for line in err.splitlines() if "invalid UTF-8" in line]
    assert len(warnings) == 1 and "80 invalid UTF-8 sequence(s) in 1 file(s)" in warnings[0]
    assert "latin1.txt" in warnings[0]
    tokenizer = json.loads((output / "tokenizer.json").read_text())
    assert tokenizer["kind"] == "sentencepiece" and tokenizer["vocabulary_size"] == 300
    assert tokenizer["normalize"] == "nfkc"
    metrics = json.loads((output / "metrics.json").read_text())
    # Below a uniform guess over the 300 pieces (loss ln 300 = 5.70; its bits per
    # byte here ~4.8, so a bound in bits per byte such as < 8 would pass it): 20
    # steps reach 4.43 (78%); an untrained or broken model stays near 5.7.
    assert metrics["val_loss"] < 0.85 * math.log(300)

    code, out, err = run_in_process(capsys, "eval", f"--model_dir={output}")
    assert code == 0, err
    assert json.loads(out)["bits_per_byte"] == pytest.approx(metrics["val_bits_per_byte"], rel=1e-4)

    generate = ["generate", "--prompt=the lazy", "--max_new_tokens=10"]
    code, keras_text, err = run_in_process(capsys, *generate, f"--model_dir={output}")
    assert code == 0 and keras_text.startswith("the lazy"), err

    code, out, err = run_in_process(capsys, "export", f"--model_dir={output}", "--quantize=none",
                                    "--verify")
    assert code == 0, err
    assert (output / "tflite" / "tokenizer.model").is_file()  # SentencePiece's own format
    for model in ("tflite/model_float32.tflite", "saved_model"):
        code, text, err = run_in_process(capsys, *generate, f"--model={output / model}")
        assert code == 0, err
        assert text == keras_text, model


@pytest.mark.slow  # minutes on 2 cores: run with `pytest -m slow`
def test_wordpiece_run_generates(capsys, subword_run):
    root, files = subword_run
    output = root / "wordpiece"
    code, _, err = run_in_process(
        capsys, "train", *TINY, "--tokenizer=wordpiece", "--vocab_size=200", "--nohistograms",
        "--noattention_maps", "--noembedding_projector",
        f"--train_files={','.join(files[:4])}", f"--val_files={files[4]}", f"--output_dir={output}",
    )
    assert code == 0, err
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={output}", "--prompt=the",
                                    "--max_new_tokens=5")
    assert code == 0 and out.startswith("the"), err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tokenizer=byte", "--vocab_size=300"], "--vocab_size=300: not used by tokenizer=byte"),
        (["--tokenizer=wordpiece", "--vocab_size=10"], "--vocab_size=10 is too small for WordPiece"),
        (["--tokenizer=char", "--sentencepiece_model_type=bpe"],
         "--sentencepiece_model_type=bpe: only used by tokenizer=sentencepiece"),
        (["--normalize=nfc"], "--normalize"),
    ],
)
def test_bad_tokenizer_flags_are_one_line_errors(capsys, subword_run, tmp_path, flags, message):
    _, files = subword_run
    code, _, err = run_in_process(
        capsys, "train", *TINY, *flags, f"--train_files={files[0]}", f"--val_files={files[1]}",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert_one_line_usage_error(code, err, "train", message)
