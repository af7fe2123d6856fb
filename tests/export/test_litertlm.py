"""`keras-lm export --format=litertlm`: files that Google's LiteRT-LM engine loads and runs.

The proof is the engine itself (`litert_lm.Engine`, CPU): its greedy text
equals the Keras model's. The default suite checks it on the tiny shared
run (3 prompts, 16 new tokens; exported once with tests/cli/test_export_command.py,
conftest's `exported_run`); the slow test on a model trained a little
longer, 64 new tokens after each of 3 prompts.
"""

import json
import shutil

import numpy as np
import pytest
from conftest import assert_one_line_usage_error, run_in_process

PROMPTS = ("the quick brown", "def main(", "It was")


@pytest.fixture(scope="module")
def exported(exported_run):
    """The tiny shared run exported by `keras-lm export --format=...,litertlm
    --quantize=none,int4 --verify` (conftest's `exported_run`)."""
    return exported_run[0]


def test_export_writes_litertlm_files_the_engine_reproduces(exported):
    assert sorted(p.name for p in (exported / "litertlm").iterdir()) == [
        "model_float32.litertlm", "model_int4.litertlm"]
    metadata = json.loads((exported / "tflite" / "metadata.json").read_text())
    assert metadata["failures"] == []
    float32 = metadata["files"]["float32"]
    assert float32["litertlm"]["file"] == "litertlm/model_float32.litertlm"
    engine = float32["litertlm"]["engine_parity"]
    assert engine["greedy_identical"] and engine["greedy_agreement"] == 1.0
    # The layout the engine binds: its names, in our own files too.
    decode = metadata["signatures"]["decode"]
    assert [e["name"] for e in decode["inputs"]][:3] == ["tokens", "input_pos", "kv_cache_k_0"]
    int4 = metadata["files"]["int4"]
    assert int4["int4"]["granularity"] == "BLOCKWISE_32"
    assert len(int4["int4"]["int4_weights"]) >= 4  # qkv, output, mlp in/out of each block
    # The tied embedding is one (int8) table, read by the lookups and the logits.
    assert int4["int4"]["embedding_lookups"] == 3
    assert not any(shape[0] == metadata["vocabulary_size"]
                   for shape in int4["int4"]["float_weights"].values())
    assert int4["size_bytes"] < float32["size_bytes"]
    assert int4["parity"]["perplexity_change"] <= 0.05
    # Measured, not bounded: this tiny model's near-uniform logits flip under int4.
    assert 0 <= int4["litertlm"]["engine_parity"]["greedy_agreement"] <= 1


def test_engine_greedy_text_equals_keras(exported):
    import keras_lm
    from keras_lm.export.litertlm import engine_greedy

    model = keras_lm.load(str(exported))
    expected = model.generate(list(PROMPTS), 16)
    got = engine_greedy(exported / "litertlm" / "model_float32.litertlm", PROMPTS, 16)
    assert got == expected
    assert all(len(text) > 0 for text in got)


@pytest.mark.slow  # a bundle of its own (~10 s); SavedModel's template is tested by default
def test_a_fine_tuned_runs_template_reaches_the_engine(exported, tmp_path):
    """The template goes into LlmMetadata; the engine applies it as `model.generate` does.

    The engine decodes with the file's default sampler here: greedy, so the
    same text (a default it cannot run fails the decode).
    """
    import keras_lm
    from keras_lm.export.litertlm import engine_greedy, read_llm_metadata, write_litertlm

    # The run as `keras-lm finetune` leaves it: the template in config.json and
    # tokenizer.json. (Only the .litertlm is rebuilt, from the float32 .tflite.)
    template = "Q: {prompt}\nA:"
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model.keras", "config.json", "tokenizer.json"):
        shutil.copy(exported / name, run / name)
    for name in ("config.json", "tokenizer.json"):
        config = json.loads((run / name).read_text())
        (run / name).write_text(json.dumps({**config, "prompt_template": template}))
    model = keras_lm.load(str(run))
    assert model.tokenizer.prompt_template == template
    path = tmp_path / "templated.litertlm"
    write_litertlm(exported / "tflite" / "model_float32.tflite", path, model.tokenizer,
                   model.sequence_length, model.tokenizer.prompt_template)
    user = read_llm_metadata(path).prompt_templates.user
    assert (user.prefix, user.suffix) == ("Q: ", "\nA:")
    prompts = ["the quick", "It was"]  # short: with the template, room for 8 tokens in 32
    expected = model.generate(prompts, 8)  # through the run's template
    assert expected != model.generate(prompts, 8, apply_template=False)
    # With the file's own default sampler (greedy), as an app that sets none.
    assert engine_greedy(path, prompts, 8, apply_prompt_template=True,
                         file_sampler=True) == expected


def test_hf_tokenizer_matches_ours_and_takes_nfkc():
    from keras_lm.export.hf_tokenizer import (
        CHECK_TEXTS,
        check_hf_tokenizer,
        hf_tokenizer,
    )
    from keras_lm.tokenizers import ByteTokenizer, CharTokenizer, WordPieceTokenizer

    vocabulary = ["<pad>", "<bos>", "<eos>", "<unk>", "def", "f", "##x", "x", "_", "1", "(", ")",
                  " ", "re", "##turn", ":"]
    for tokenizer in (ByteTokenizer(), CharTokenizer(list("abcdef ():_\n")),
                      WordPieceTokenizer(vocabulary), ByteTokenizer(normalize="nfkc")):
        hf = hf_tokenizer(tokenizer)
        check_hf_tokenizer(hf, tokenizer, ["def fx_1(x):\n  return x"])
        assert hf.token_to_id("<eos>") == tokenizer.eos_id
    nfkc = hf_tokenizer(ByteTokenizer(normalize="nfkc"))
    assert nfkc.encode("ﬁ½").ids == list("fi1⁄2".encode())  # the normalizer reached the file
    with pytest.raises(ValueError, match="encodes"):  # a check that can fail
        check_hf_tokenizer(hf_tokenizer(ByteTokenizer()), ByteTokenizer(normalize="nfkc"),
                           CHECK_TEXTS)


# --- what cannot be a .litertlm: one line, exit 2, nothing written -------------


def _run_dir(tmp_path, model, tokenizer, config=None):
    directory = tmp_path / "run"
    directory.mkdir()
    model.save(str(directory / "model.keras"))
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "config.json").write_text(json.dumps(config or {}))
    return directory


def _refused(capsys, directory, message):
    code, _, err = run_in_process(capsys, "export", f"--model_dir={directory}",
                                  "--format=litertlm", "--quantize=none")
    assert_one_line_usage_error(code, err, "export", message)
    assert sorted(p.name for p in directory.iterdir()) == [
        "config.json", "model.keras", "tokenizer.json"]


def test_an_lstm_is_refused(capsys, tmp_path):
    from keras_lm.models import LSTMLM
    from keras_lm.tokenizers import ByteTokenizer

    model = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=32)
    _refused(capsys, _run_dir(tmp_path, model, ByteTokenizer()),
             "--format: litertlm cannot hold this model: a lstm model's state")


def test_a_task_run_is_refused(capsys, tmp_path):
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=32)
    _refused(capsys, _run_dir(tmp_path, model, ByteTokenizer(), {"task": "copy"}),
             "is a model trained on a synthetic task; export (a synthetic-task run has an id "
             "tokenizer")


def test_a_normalization_the_file_cannot_hold_is_refused(capsys, tmp_path):
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import CharTokenizer

    tokenizer = CharTokenizer(list("abc "), normalize="nfkc_lower")
    model = TransformerLM.from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size,
                                      sequence_length=32)
    _refused(capsys, _run_dir(tmp_path, model, tokenizer), "normalize='nfkc_lower'")


@pytest.mark.slow
def test_engine_matches_keras_for_64_tokens_after_3_prompts(tmp_path):
    """A briefly trained model (not near-uniform logits): 3 x 64 greedy tokens, token for token."""
    import keras
    from conftest import write_corpus

    from keras_lm.data import text_dataset
    from keras_lm.export.litertlm import engine_greedy, write_litertlm
    from keras_lm.export.tflite import export_tflite
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer()
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=128)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    files = write_corpus(str(tmp_path / "corpus"), num_files=4)
    model.fit(text_dataset(files, tokenizer, 128, batch_size=8).take(150), verbose=0)
    info = export_tflite(model, tmp_path / "model.tflite", prefill_lengths=(8, 32))
    path = tmp_path / "model.litertlm"
    write_litertlm(info.path, path, tokenizer, model.sequence_length)
    expected = model.generate(list(PROMPTS), 64, tokenizer=tokenizer)
    got = engine_greedy(path, PROMPTS, 64)
    assert got == expected
    for text, prompt in zip(got, PROMPTS):
        ids = [tokenizer.bos_id, *np.asarray(tokenizer.encode(prompt)).tolist()]
        assert len(np.asarray(tokenizer.encode(text))) == 64 or len(ids) + len(text) >= 128


@pytest.mark.slow
def test_example_script_checks_the_engine_against_keras(exported):
    """examples/litertlm_generate.py --check: the engine's text == Keras' (exit 0)."""
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                          "examples", "litertlm_generate.py")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run(
        [sys.executable, script, str(exported / "litertlm" / "model_float32.litertlm"),
         "the quick brown", "It was", "--max_new_tokens=12", "--check"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": root},  # this checkout's keras_lm for --check
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "engine == keras (greedy): True"
