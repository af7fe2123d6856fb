"""keras-lm finetune: pairs with the loss on the response, LoRA, the template downstream,
and every bad input as one line (exit 2, nothing written)."""

import hashlib
import json
import os

import numpy as np
import pytest
from conftest import assert_one_line_usage_error, run_captured, run_in_process

from keras_lm.tokenizers import ByteTokenizer

# Fast runs: no XLA (compiling costs more than 4 steps), no TensorBoard views.
QUICK = ["--steps=4", "--eval_interval=2", "--batch_size=8", "--val_steps=1", "--verbose=0",
         "--nojit_compile", "--nosamples", "--noattention_maps", "--noembedding_projector",
         "--nohparams"]


def make_base(directory, family="transformer"):
    """A run directory as `keras-lm train` leaves it (untrained weights: enough here)."""
    import keras

    from keras_lm.io_utils import write_json
    from keras_lm.models import MODELS
    from keras_lm.tokenizers import ByteTokenizer

    keras.utils.set_random_seed(0)
    os.makedirs(directory)
    model = MODELS[family].from_preset("tiny", vocabulary_size=259, sequence_length=32,
                                       pad_id=256)
    model.save(os.path.join(directory, "model.keras"))
    ByteTokenizer().save(os.path.join(directory, "tokenizer.json"))
    write_json(os.path.join(directory, "config.json"),
               {"model": family, "preset": "tiny", "tokenizer": "byte", "sequence_length": 32})
    return str(directory)


def digests(directory):
    """SHA-256 of every file under `directory` (what "never changed" means)."""
    found = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return found


def write_pairs(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    rng = np.random.default_rng(0)
    rows = [{"prompt": f"{a}+{b}", "response": str(a + b)}
            for a, b in rng.integers(0, 50, (60, 2))]
    return {"root": root, "base": make_base(root / "base"),
            "lstm": make_base(root / "lstm", "lstm"),
            "pairs": write_pairs(root / "pairs.jsonl", rows)}


@pytest.fixture(scope="module")
def lora_run(setup):
    """One LoRA fine-tuning on pairs through the command line, in this process."""
    before = digests(setup["base"])
    output = str(setup["root"] / "lora")
    result = run_captured("finetune", f"--model_dir={setup['base']}",
                          f"--data={setup['pairs']}", f"--output_dir={output}", "--lora_rank=2",
                          "--lora_alpha=4", "--save_adapters", "--template=Q {prompt} A ", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    return {**setup, "output": output, "base_before": before}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_a_lora_run_writes_a_run_directory_and_leaves_its_base_alone(lora_run):
    output = lora_run["output"]
    assert digests(lora_run["base"]) == lora_run["base_before"]
    for name in ("model.keras", "tokenizer.json", "config.json", "metrics.json", "adapters.npz"):
        assert os.path.isfile(os.path.join(output, name)), name
    config = read_json(os.path.join(output, "config.json"))
    assert config["prompt_template"] == "Q {prompt} A "
    assert config["base"]["model_dir"] == os.path.abspath(lora_run["base"])
    assert config["finetune_kind"] == "pairs" and config["pairs_validation"] == "hash"
    assert config["lora"]["rank"] == 2 and config["lora"]["alpha"] == 4.0
    assert config["num_train_pairs"] + config["num_val_pairs"] == 60
    assert read_json(os.path.join(output, "tokenizer.json"))["prompt_template"] == "Q {prompt} A "
    metrics = read_json(os.path.join(output, "metrics.json"))
    assert 0 < metrics["trainable_parameters"] < metrics["num_parameters"] / 5
    assert metrics["steps"] == 4 and np.isfinite(metrics["val_loss"])
    assert metrics["val_loss"] != metrics["val_loss_before"]


def test_eval_scores_the_runs_own_validation_responses(lora_run, capsys, monkeypatch):
    from keras_lm import data, run
    from keras_lm.prompt_template import PromptTemplate

    scored = []

    def spy(model, examples, batch_size, pad_id):  # the scoring itself: tests/data/test_pairs.py
        scored.append(examples)
        return {"response_loss": 1.5, "examples": len(examples)}

    monkeypatch.setattr(run, "evaluate_pairs", spy)  # what Run.evaluate scores with
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={lora_run['output']}")
    assert code == 0, err
    assert json.loads(out) == {"response_loss": 1.5, "examples": len(scored[0]),
                               "data": "validation pairs"}
    # Exactly the rows the run validated on, through its template.
    validation = data.split_pairs(data.read_pairs(lora_run["pairs"]))[1]
    expected = data.encode_pairs(validation, ByteTokenizer(), PromptTemplate("Q {prompt} A "),
                                 32)
    metrics = read_json(os.path.join(lora_run["output"], "metrics.json"))
    assert len(scored[0]) == metrics["val_pairs"] == len(validation)
    for got, want in zip(scored[0].inputs + scored[0].weights, expected.inputs + expected.weights):
        np.testing.assert_array_equal(got, want)


def test_eval_data_scores_given_pairs_as_the_run_scores_its_own(lora_run, capsys, tmp_path):
    from keras_lm import data

    # The run's validation pairs under other keys: scored as the run scored its own
    # (metrics.json: the responses only, through the run's template).
    validation = data.split_pairs(data.read_pairs(lora_run["pairs"]))[1]
    path = write_pairs(tmp_path / "given.jsonl",
                       [{"q": pair.prompt, "a": pair.response} for pair in validation])
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={lora_run['output']}",
                                    f"--data={path}", "--prompt_key=q", "--response_key=a")
    assert code == 0, err
    given = json.loads(out)
    metrics = read_json(os.path.join(lora_run["output"], "metrics.json"))
    assert given["data"] == path and given["examples"] == metrics["val_pairs"]
    assert given["response_tokens"] == sum(len(pair.response) + 1 for pair in validation)
    np.testing.assert_allclose(given["response_loss"], metrics["val_loss"], rtol=1e-5)


@pytest.mark.parametrize("run, args, message", [
    ("output", ["--data={bad}"], "--data: line 2 of"),
    ("output", ["--data={pairs}", "--response_key=reply"], "--response_key: line 1 of"),
    ("output", ["--data={pairs}", "--text_key=text"],
     "--text_key=text: only used with data on classifier runs"),
    ("output", ["--data={pairs}", "--files={pairs}"], "--data="),
    ("base", ["--data={pairs}"], "--data="),
    ("base", ["--prompt_key=q"], "--prompt_key=q: only used with data on pair runs"),
])
def test_eval_data_bad_input_is_one_line(lora_run, capsys, tmp_path, run, args, message):
    paths = {"pairs": lora_run["pairs"],
             "bad": bad_pairs(lora_run, "eval_bad.jsonl",
                              '{"prompt": "a", "response": "b"}\n{"pr\n').split("=", 1)[1]}
    code, _, err = run_in_process(capsys, "eval", f"--model_dir={lora_run[run]}",
                                  *[a.format(**paths) for a in args])
    assert_one_line_usage_error(code, err, "eval", message)


def test_generate_applies_the_template_unless_raw(lora_run, capsys, monkeypatch):
    import keras_lm
    import keras_lm.generation
    from keras_lm.cli import generate_command

    asked = []
    monkeypatch.setattr(keras_lm.generation, "generate",
                        lambda model, tokenizer, prompts, *a, **k: asked.append(prompts) or "")
    model = keras_lm.load(lora_run["output"])
    model.generate("3+4", 6)
    model.generate(["3+4", "1+1"], 6)
    model.generate("3+4", 6, apply_template=False)
    assert asked == ["Q 3+4 A ", ["Q 3+4 A ", "Q 1+1 A "], "3+4"]

    def stream(model, tokenizer, prompt, *args, **kwargs):
        asked.append(prompt)
        yield "7"

    monkeypatch.setattr(generate_command, "stream", stream)
    code, out, _ = run_in_process(capsys, "generate", f"--model_dir={lora_run['output']}",
                                  "--prompt=3+4", "--max_new_tokens=6")
    assert code == 0 and out == "Q 3+4 A 7\n" and asked[-1] == "Q 3+4 A "
    code, out, _ = run_in_process(capsys, "generate", f"--model_dir={lora_run['output']}",
                                  "--prompt=3+4", "--max_new_tokens=6", "--raw")
    assert code == 0 and out == "3+47\n" and asked[-1] == "3+4"


def test_saved_adapters_on_the_base_give_the_merged_model(lora_run):
    import keras_lm
    from keras_lm.adaptation import load_adapters

    ids = np.arange(24, dtype="int32").reshape(2, 12) % 256
    base = keras_lm.load(lora_run["base"])
    load_adapters(base, os.path.join(lora_run["output"], "adapters.npz"))
    merged = keras_lm.load(lora_run["output"])
    np.testing.assert_allclose(np.asarray(base(ids)), np.asarray(merged(ids)), atol=1e-5)


# --- bad input: one line, exit code 2, nothing written ---------------------------------


def bad_pairs(setup, name, text):
    path = setup["root"] / name
    path.write_text(text, encoding="utf-8")
    return f"--data={path}"


@pytest.mark.parametrize("case, message", [
    ("missing_base", "--model_dir: "),
    ("not_a_model_dir", "--model_dir: no model.keras in"),
    ("output_is_base", "--output_dir="),
    ("malformed_line", "--data: line 2 of"),
    ("missing_key", "--response_key: line 1 of"),
    ("empty_response", "--data: line 1 of"),
    ("long_response", "--data: the response of line 1 of"),
    ("lora_rank_zero", "--lora_rank must be an integer > 0, got 0"),
    ("lora_on_lstm", "--lora_rank=2: LoRA needs Dense layers"),
    ("tokenizer_flag", "--tokenizer=char: fine-tuning uses the base model's tokenizer"),
    ("vocab_size_flag", "--vocab_size=100: fine-tuning uses the base model's tokenizer"),
    ("template_without_field", "--template: '### {question}' has the field {question}"),
    ("template_with_two", "--template: '{prompt}{prompt}' must contain exactly one"),
])
def test_bad_input_is_one_line_and_writes_nothing(setup, capsys, case, message):
    output = str(setup["root"] / f"out_{case}")
    args = {"model_dir": setup["base"], "output_dir": output, "data": setup["pairs"]}
    extra = []
    if case == "missing_base":
        args["model_dir"] = str(setup["root"] / "nowhere")
    elif case == "not_a_model_dir":
        args["model_dir"] = str(setup["root"])
    elif case == "output_is_base":
        args["output_dir"] = setup["base"]
    elif case == "malformed_line":
        extra.append(bad_pairs(setup, "bad.jsonl", '{"prompt": "a", "response": "b"}\n{"pr\n'))
    elif case == "missing_key":
        extra.append(bad_pairs(setup, "key.jsonl", '{"prompt": "a", "reply": "b"}\n'))
    elif case == "empty_response":
        extra.append(bad_pairs(setup, "empty.jsonl", '{"prompt": "a", "response": ""}\n'))
    elif case == "long_response":
        extra.append(bad_pairs(setup, "long.jsonl",
                               json.dumps({"prompt": "a", "response": "x" * 40}) + "\n"
                               + json.dumps({"prompt": "b", "response": "y"}) + "\n"))
    elif case == "lora_rank_zero":
        extra.append("--lora_rank=0")
    elif case == "lora_on_lstm":
        args["model_dir"] = setup["lstm"]
        extra.append("--lora_rank=2")
    elif case == "tokenizer_flag":
        extra.append("--tokenizer=char")
    elif case == "vocab_size_flag":
        extra.append("--vocab_size=100")
    elif case == "template_without_field":
        extra.append("--template=### {question}")
    elif case == "template_with_two":
        extra.append("--template={prompt}{prompt}")
    flags = [f"--{k}={v}" for k, v in args.items() if not (k == "data" and extra and
                                                          extra[0].startswith("--data="))]
    base_before = digests(setup["base"])
    code, _, err = run_in_process(capsys, "finetune", *flags, *extra, *QUICK)
    assert_one_line_usage_error(code, err, "finetune", message)
    assert not os.path.exists(output)
    assert digests(setup["base"]) == base_before


# --- end to end, slow: more text, adapters reused, export, the recipe ------------------


@pytest.mark.slow
def test_continued_training_on_text_keeps_the_base_tokenizer(setup, capsys):
    from conftest import write_corpus

    files = write_corpus(str(setup["root"] / "text"), num_files=3)
    output = str(setup["root"] / "text_run")
    code, out, err = run_in_process(capsys, "finetune", f"--model_dir={setup['base']}",
                                    f"--train_files={','.join(files[:2])}",
                                    f"--val_files={files[2]}", f"--output_dir={output}",
                                    "--steps=6", "--eval_interval=3", "--batch_size=4",
                                    "--verbose=2", "--nosamples")
    assert code == 0, err
    assert "validation loss: " in out and " before, " in out and "bits per byte" in out
    config = read_json(os.path.join(output, "config.json"))
    assert config["finetune_kind"] == "text" and config["prompt_template"] is None
    assert config["tokenizer"] == "byte" and config["sequence_length"] == 32
    metrics = read_json(os.path.join(output, "metrics.json"))
    assert metrics["val_loss"] < metrics["val_loss_before"]
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={output}")
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)["loss"], metrics["val_loss"], rtol=1e-4)


@pytest.mark.slow
def test_adapters_train_further_on_their_base_only(lora_run, capsys):
    adapters = os.path.join(lora_run["output"], "adapters.npz")
    output = str(lora_run["root"] / "again")
    code, _, err = run_in_process(capsys, "finetune", f"--model_dir={lora_run['base']}",
                                  f"--data={lora_run['pairs']}", f"--adapters={adapters}",
                                  f"--output_dir={output}", *QUICK)
    assert code == 0, err
    config = read_json(os.path.join(output, "config.json"))
    assert config["lora"]["rank"] == 2 and config["lora_alpha"] == 4.0
    other = str(lora_run["root"] / "other_base")
    make_base(other, "transformer")
    import keras

    from keras_lm.models import TransformerLM
    keras.utils.set_random_seed(9)  # same shapes, other weights
    TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=32,
                              pad_id=256).save(os.path.join(other, "model.keras"))
    code, _, err = run_in_process(capsys, "finetune", f"--model_dir={other}",
                                  f"--data={lora_run['pairs']}", f"--adapters={adapters}",
                                  f"--output_dir={output}_x", *QUICK)
    assert_one_line_usage_error(code, err, "finetune", "was trained on another base")
    assert not os.path.exists(f"{output}_x")


@pytest.mark.slow
def test_export_of_a_pair_run_carries_the_template_and_scores_its_pairs(lora_run, capsys):
    code, out, err = run_in_process(capsys, "export", f"--model_dir={lora_run['output']}",
                                    "--quantize=none", "--verify")
    assert code == 0, err + out
    bundle = os.path.join(lora_run["output"], "tflite")
    metadata = read_json(os.path.join(bundle, "metadata.json"))
    assert metadata["prompt_template"] == "Q {prompt} A "
    assert read_json(os.path.join(bundle, "tokenizer.json"))["prompt_template"] == "Q {prompt} A "
    assert metadata["parity_setup"]["windows"] > 0  # the validation pairs, laid end to end
    code, out, err = run_in_process(capsys, "generate",
                                    f"--model={bundle}/model_float32.tflite",
                                    "--prompt=3+4", "--max_new_tokens=4")
    assert code == 0 and out.startswith("3+4"), err


@pytest.mark.slow
def test_the_docstring_recipe_runs_and_reports_before_and_after(tmp_path, capsys):
    base = str(tmp_path / "base")
    code, _, err = run_in_process(capsys, "train", "--recipe=tiny", "--sequence_length=128",
                                  "--steps=4", "--eval_interval=2", "--val_steps=1",
                                  "--verbose=0", "--nosamples", f"--output_dir={base}")
    assert code == 0, err
    output = str(tmp_path / "docstrings")
    code, out, err = run_in_process(capsys, "finetune", "--recipe=docstring_to_code",
                                    f"--model_dir={base}", f"--output_dir={output}",
                                    "--steps=4", "--eval_interval=2", "--verbose=2")
    assert code == 0, err
    assert "validation response loss: " in out and "answered greedily" in out
    config = read_json(os.path.join(output, "config.json"))
    assert config["pairs_corpus"] == "docstring_to_code"
    assert config["pairs_corpus_max_bytes"] == 112 and config["num_val_pairs"] > 20
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={output}")
    assert code == 0 and json.loads(out)["examples"] == config["num_val_pairs"], err


def test_classifier_flags_belong_to_the_classifier_head(setup, capsys):
    output = str(setup["root"] / "out_head")
    code, _, err = run_in_process(capsys, "finetune", f"--model_dir={setup['base']}",
                                  f"--output_dir={output}", "--head=classifier")
    assert_one_line_usage_error(code, err, "finetune", "--data: --head=classifier needs")
    code, _, err = run_in_process(capsys, "finetune", f"--model_dir={setup['base']}",
                                  f"--output_dir={output}", f"--data={setup['pairs']}",
                                  "--text_key=body")
    assert_one_line_usage_error(code, err, "finetune", "--text_key=body: only used with "
                                "--head=classifier")
    code, _, err = run_in_process(capsys, "finetune", f"--model_dir={setup['base']}",
                                  f"--output_dir={output}", f"--data={setup['pairs']}",
                                  "--head=classifier", "--template=Q {prompt}")
    assert_one_line_usage_error(code, err, "finetune", "--template=Q {prompt}: not used with")
    assert not os.path.exists(output)
