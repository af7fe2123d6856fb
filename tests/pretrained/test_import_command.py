"""keras-lm import: run directories from presets and checkpoints; eval and generate on them;
bad input as one line, exit 2, nothing written."""

import json
import os

import pytest
from conftest import run_in_process


def test_import_writes_a_run_directory_that_keras_lm_load_reads(pretrained_runs):
    import keras_lm

    for name in ("gpt2", "gemma3", "llama3", "hf_llama3"):
        run = pretrained_runs[name]
        assert sorted(os.listdir(run)) == ["config.json", "model.keras", "preset",
                                           "tokenizer.json"]
        with open(os.path.join(run, "config.json")) as f:
            config = json.load(f)
        assert config["source"] == pretrained_runs["presets"][name]
        assert config["architecture"] == name.replace("hf_", "")
        assert config["parameters"] > 1000
        assert sorted(os.listdir(os.path.join(run, "preset"))) == sorted(
            os.listdir(pretrained_runs["presets"][name]))  # the preset's own files
    # The Hugging Face checkpoint holds the same weights as the keras-hub preset.
    text = keras_lm.load(pretrained_runs["llama3"]).generate("def the", 6)
    assert keras_lm.load(pretrained_runs["hf_llama3"]).generate("def the", 6) == text


def test_import_command_prints_the_run(pretrained_runs, tmp_path, capsys):
    output = tmp_path / "gpt2_run"
    code, out, err = run_in_process(capsys, "import", f"--preset={pretrained_runs['presets']['gpt2']}",
                                    f"--output_dir={output}")
    assert code == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    assert line["architecture"] == "gpt2" and line["output_dir"] == str(output)


@pytest.mark.parametrize("preset, message", [
    ("{tmp}/nowhere/at_all", "--preset: no such directory"),
    ("{tmp}/empty", "--preset: no config.json in"),
    ("{bert}", "--preset: cannot load"),
    ("{mistral}", "tokenizer.json` doesn't exist"),  # a missing file
    ("{neox}", "'GPTNeoXBackbone' is not supported"),
    ("hf://someone/some-model", "--preset: cannot"),
    ("no_such_preset_name", "is neither a directory"),
])
def test_bad_preset_is_one_line_exit_2_and_nothing_written(pretrained_runs, tmp_path, capsys,
                                                           non_causal_presets, preset, message):
    (tmp_path / "empty").mkdir()
    preset = preset.format(tmp=tmp_path, **non_causal_presets)
    output = tmp_path / "out"
    code, out, err = run_in_process(capsys, "import", f"--preset={preset}",
                                    f"--output_dir={output}")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not output.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".import-")] == []


def test_a_non_empty_output_dir_is_refused(pretrained_runs, tmp_path, capsys):
    code, _, err = run_in_process(capsys, "import", f"--preset={pretrained_runs['presets']['gpt2']}",
                                  f"--output_dir={pretrained_runs['gpt2']}")
    assert code == 2 and "--output_dir:" in err and "not an empty directory" in err


def test_eval_and_generate_run_on_an_imported_directory(pretrained_runs, tmp_path, capsys):
    text = tmp_path / "a.py"
    text.write_text("def encode(self, o):\n    return str(o)\n" * 20, encoding="utf-8")
    run = pretrained_runs["gpt2"]
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={run}", f"--files={text}",
                                    "--batch_size=2")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["bits_per_byte"] > 0 and result["tokens"] > 0
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={run}", "--prompt=def ",
                                    "--max_new_tokens=5")
    assert code == 0, err
    assert out.startswith("def ")


@pytest.fixture(scope="module")
def non_causal_presets(tmp_path_factory):
    """Tiny random keras-hub presets: one that is no causal LM (BERT), one without its
    tokenizer (Mistral), one of an architecture keras_lm does not take (GPT-NeoX)."""
    import keras_hub

    from keras_lm.pretrained.tiny_presets import byte_level_vocabulary

    root = tmp_path_factory.mktemp("other_presets")
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    bert = keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), num_layers=1,
                                         num_heads=1, hidden_dim=4, intermediate_dim=8,
                                         max_sequence_length=8)
    bert.save_to_preset(str(root / "bert"))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary).save_to_preset(str(root / "bert"))
    mistral = keras_hub.models.MistralBackbone(vocabulary_size=16, num_layers=1,
                                               num_query_heads=2, num_key_value_heads=1,
                                               hidden_dim=8, intermediate_dim=16)
    mistral.save_to_preset(str(root / "mistral"))  # and no tokenizer
    tokenizer = keras_hub.models.GPTNeoXTokenizer(*byte_level_vocabulary(["<|endoftext|>"]))
    neox = keras_hub.models.GPTNeoXBackbone(vocabulary_size=tokenizer.vocabulary_size(),
                                            num_layers=1, num_heads=2, hidden_dim=8,
                                            intermediate_dim=16)
    neox.save_to_preset(str(root / "neox"))
    tokenizer.save_to_preset(str(root / "neox"))
    return {name: str(root / name) for name in ("bert", "mistral", "neox")}
