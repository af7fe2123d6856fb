"""The `keras-lm` command line, end to end, on a tiny corpus."""

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import TINY, assert_one_line_usage_error, keras_lm, run_in_process


def test_train_writes_every_artifact(trained):
    output, _, result = trained
    for name in ("model.keras", "tokenizer.json", "config.json", "metrics.json",
                 "samples.txt", "checkpoints/best.keras"):
        assert (output / name).is_file(), name
    assert not (output / "backup").exists()  # removed once the run completes
    assert any((output / "logs" / "train").iterdir())
    assert any((output / "logs" / "validation").iterdir())
    metrics = json.loads((output / "metrics.json").read_text())
    for key in ("train_loss", "val_loss", "val_perplexity", "val_bits_per_byte",
                "xz_val_bits_per_byte", "tokens_seen", "wall_time_seconds"):
        assert isinstance(metrics[key], (int, float)), key
    assert metrics["steps"] == 20
    assert metrics["tokens_seen"] == (4 * 1 + 16 * 4) * 32  # 4 warm-up steps of 1 sequence
    assert "step 10  896 tokens" in result.stdout
    config = json.loads((output / "config.json").read_text())
    assert config["recipe"] == "tiny" and config["sequence_length"] == 32
    assert "bits per byte" in result.stdout and "xz" in result.stdout
    assert "Traceback" not in result.stderr


def test_eval_prints_one_json_object(trained, capsys):
    output, files, _ = trained
    code, out, err = run_in_process(capsys, "eval", f"--model_dir={output}", f"--files={files[4]}")
    assert code == 0, err[-2000:]
    figures = json.loads(out)
    metrics = json.loads((output / "metrics.json").read_text())
    assert figures["loss"] == pytest.approx(metrics["val_loss"], rel=1e-4)
    assert figures["bits_per_byte"] == pytest.approx(metrics["val_bits_per_byte"], rel=1e-4)


def test_generate_continues_the_prompt(trained, capsys):
    output, _, _ = trained
    args = ("generate", f"--model_dir={output}", "--prompt=the quick",
            "--max_new_tokens=12", "--temperature=0.8", "--seed=3")
    first, second = run_in_process(capsys, *args), run_in_process(capsys, *args)
    assert first[0] == 0, first[2][-2000:]
    assert first[1].startswith("the quick")
    assert first[1] == second[1]  # seeded sampling is reproducible


def test_generate_streams_samples_and_beams(trained, capsys):
    output, _, _ = trained
    code, out, err = run_in_process(
        capsys, "generate", f"--model_dir={output}", "--prompt=the", "--num_samples=3",
        "--sampler=top_k", "--top_k=5", "--max_new_tokens=10", "--seed=1")
    assert code == 0, err[-2000:]
    assert [line for line in out.splitlines() if line.startswith("--- sample")] == [
        f"--- sample {i} of 3 ---" for i in (1, 2, 3)]
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={output}", "--prompt=the",
                                    "--beam_width=3", "--max_new_tokens=10", "--stop=.")
    assert code == 0, err[-2000:]
    assert out.startswith("the") and "." not in out


def test_generate_truncates_a_long_prompt_only_when_asked(capsys, trained):
    output, _, _ = trained
    prompt = "the lazy dog " * 4  # 53 tokens with <bos>; the context is 32
    code, _, err = run_in_process(capsys, "generate", f"--model_dir={output}",
                                  f"--prompt={prompt}", "--max_new_tokens=8")
    assert code == 2 and "exceed the model's context of 32 tokens" in err
    assert "truncate='left'" in err
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={output}",
                                    f"--prompt={prompt}", "--max_new_tokens=8", "--truncate=left")
    assert code == 0 and out.startswith(prompt)
    assert "prompt truncated from the left: kept its last 24 of 53 tokens" in err


BAD_GENERATE_FLAGS = [
    (["--max_new_tokens=0"], "max_new_tokens must be an integer > 0, got 0"),
    (["--max_new_tokens=-3"], "max_new_tokens must be an integer > 0, got -3"),
    (["--max_new_tokens=40"], "max_new_tokens must be < the model's context of 32 tokens"),
    (["--top_k=0"], "top_k must be an integer > 0, got 0"),
    (["--top_k=1000"], "top_k must be <= the vocabulary size 259, got 1000"),
    (["--top_p=0"], "top_p must be in (0, 1], got 0.0"),
    (["--top_p=1.5"], "top_p must be in (0, 1], got 1.5"),
    (["--temperature=-1"], "temperature must be >= 0 (0 means greedy), got -1.0"),
    (["--sampler=nucleus"], "flag --sampler=nucleus: value should be one of"),
    (["--beam_width=0"], "beam_width must be an integer >= 1, got 0"),
    (["--num_samples=0"], "--num_samples must be >= 1, got 0"),
    (["--beam_width=2", "--num_samples=2"], "--num_samples=2: beam search gives one"),
    (["--sampler=top_p", "--top_k=3"], "top_k is not an option of sampler='top_p'"),
    (["--sampler=top_k", "--top_k=3", "--beam_width=2"], "beam_width is not an option of sampler='top_k'"),
    (["--sampler=greedy", "--temperature=0.5"], "temperature is not an option of sampler='greedy'"),
    (["--truncate=middle"], "flag --truncate=middle"),
]


@pytest.mark.parametrize("flags,message", BAD_GENERATE_FLAGS, ids=[" ".join(f[0]) for f in BAD_GENERATE_FLAGS])
def test_bad_generate_flags_get_one_line_and_exit_2(capsys, trained, flags, message):
    output, _, _ = trained
    code, _, err = run_in_process(capsys, "generate", f"--model_dir={output}", *flags)
    assert_one_line_usage_error(code, err, "generate", message)


BAD_TRAIN_FLAGS = [
    (["--train_files=/no/such/dir/*.txt"], "--train_files: no file matches"),
    (["--train_files= , "], "--train_files: the file set is empty"),
    (["--sequence_length=1"], "--sequence_length must be >= 2, got 1"),
    (["--batch_size=0"], "--batch_size must be >= 1, got 0"),
    (["--batch_size=-3"], "--batch_size must be >= 1, got -3"),
    (["--model=gru"], "flag --model=gru: value should be one of"),
    (["--preset=huge"], "--preset: unknown value 'huge'"),
    (["--optimizer=rmsprop"], "flag --optimizer=rmsprop"),
    (["--tokenizer=bpe"], "flag --tokenizer=bpe"),
    (["--recipe=giant"], "flag --recipe=giant"),
    (["--output_dir=/proc/keras_lm_cannot_write_here"], "--output_dir: '/proc/keras_lm_"),
    (["--steps=many"], "flag --steps=many"),
    (["--model_args=hidden_dim"], "--model_args: expected name=value"),
    (["--train_minutes=0"], "--train_minutes must be > 0, got 0.0"),
    (["--model_args=hidden_size=8"], "--model_args: "),
    (["--sample_tokens=32"], "--sample_tokens must be < sequence_length=32"),
    (["--sequence_warmup_steps=-1"], "--sequence_warmup_steps must be >= 0, got -1"),
    (["--sequence_warmup_steps=5", "--sequence_length=30"],
     "--sequence_warmup_steps=5 needs a sequence_length divisible by 4, got 30"),
    (["--batch_warmup_steps=6"], "--batch_warmup_steps must be a multiple of 4, got 6"),
    (["--batch_warmup_steps=4", "--batch_size=6"],
     "--batch_warmup_steps=4 needs a batch_size divisible by 4, got 6"),
    (["--batch_warmup_steps=4", "--sequence_warmup_steps=4"],
     "--batch_warmup_steps=4: choose one warm-up, not both"),
    (["--batch_warmup_steps=4", "--strategy=mirrored"],
     "--batch_warmup_steps=4: not supported with strategy=mirrored"),
]


@pytest.mark.parametrize("flags,message", BAD_TRAIN_FLAGS, ids=[f[0][0] for f in BAD_TRAIN_FLAGS])
def test_bad_train_flags_get_one_line_and_exit_2(capsys, tmp_path, flags, message):
    output = tmp_path / "never_created"
    args = ["train", *TINY, f"--output_dir={output}", *flags]
    code, _, err = run_in_process(capsys, *args)
    assert_one_line_usage_error(code, err, "train", message)
    assert not output.exists()  # nothing half-written


def test_unreadable_output_parent_names_the_flag(capsys, tmp_path, corpus):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    code, _, err = run_in_process(
        capsys, "train", *TINY, f"--train_files={','.join(corpus)}",
        f"--output_dir={blocker}/sub")
    assert code == 2 and "--output_dir" in err and "not writable" in err


@pytest.mark.parametrize("command", ["eval", "generate"])
def test_eval_and_generate_without_a_model(capsys, tmp_path, command):
    code, out, err = run_in_process(capsys, command, f"--model_dir={tmp_path}")
    assert code == 2
    assert err.strip() == f"keras-lm {command}: error: --model_dir: no model.keras in '{tmp_path}' (train a model first)"


def test_unknown_subcommand_and_help(capsys):
    code, _, err = run_in_process(capsys, "fly")
    assert code == 2 and "unknown subcommand 'fly'" in err
    code, out, _ = run_in_process(capsys, "--help")
    assert code == 0 and all(name in out for name in ("train", "eval", "generate"))
    code, out, _ = run_in_process(capsys, "train", "--help")
    assert code == 0 and "--sequence_length" in out and "--recipe" in out


def test_console_script_reports_bad_input_without_traceback(tmp_path):
    result = keras_lm("train", "--batch_size=0", f"--output_dir={tmp_path}/x")
    assert result.returncode == 2
    assert result.stderr.strip() == "keras-lm train: error: --batch_size must be >= 1, got 0"


@pytest.mark.slow  # minutes on 2 cores: run with `pytest -m slow`
def test_invalid_utf8_files_train_with_both_tokenizers(tmp_path, corpus):
    bad = tmp_path / "corpus" / "latin1.txt"
    bad.write_bytes("caf\xe9 na\xefve r\xe9sum\xe9\n".encode("latin-1") * 50)
    for tokenizer in ("byte", "char"):
        result = keras_lm(
            "train", *TINY, "--steps=2", "--eval_interval=2", "--nojit_compile",
            f"--tokenizer={tokenizer}", f"--train_files={tmp_path / 'corpus'}",
            f"--output_dir={tmp_path / tokenizer}")
        assert result.returncode == 0, result.stderr[-2000:]
        assert (tmp_path / tokenizer / "model.keras").is_file()


@pytest.mark.slow  # minutes on 2 cores: run with `pytest -m slow`
def test_interrupted_run_resumes_where_it_stopped(tmp_path, corpus):
    output = tmp_path / "out"
    args = [sys.executable, "-m", "keras_lm.cli.main", "train", *TINY, "--nojit_compile",
            "--steps=60", "--eval_interval=10", f"--train_files={','.join(corpus[:3])}",
            f"--val_files={corpus[3]}", f"--output_dir={output}"]
    metadata = output / "backup" / "training_metadata.json"
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    epoch = 0
    while time.time() < deadline and process.poll() is None:
        if metadata.is_file():
            try:
                epoch = json.loads(metadata.read_text())["epoch"]
            except ValueError:
                epoch = 0  # being written
            if epoch >= 2:
                break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)  # a crash: no clean-up of any kind
    process.wait()
    assert epoch >= 2 and not (output / "model.keras").exists()

    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming" in result.stdout
    evaluations = [int(line.split()[1].replace(",", "")) for line in result.stdout.splitlines()
                   if line.startswith("step ")]
    assert evaluations[0] != 10  # it did not start over
    assert evaluations[0] in (10 * (epoch + 1), 10 * (epoch + 2))
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["steps"] == 60  # the optimizer's step count was restored too


def test_recipe_clock_gives_way_to_explicit_steps():
    from keras_lm.cli import train_command

    flags = train_command.FLAGS
    flags.unparse_flags()
    flags(["keras-lm train"])
    assert train_command.config_from_flags().train_minutes == 5.0  # the quickstart's clock
    flags.unparse_flags()
    flags(["keras-lm train", "--steps=50"])
    config = train_command.config_from_flags()
    assert (config.steps, config.train_minutes) == (50, None)
    flags.unparse_flags()
    flags(["keras-lm train", "--steps=50", "--train_minutes=2"])
    assert train_command.config_from_flags().train_minutes == 2.0
    flags.unparse_flags()
    flags(["keras-lm train", "--recipe=lstm_quickstart", "--model_args=hidden_dim=64"])
    config = train_command.config_from_flags()
    # The recipe's own model_args (its generation limit) stay beside the flag's.
    assert (config.model, config.model_args) == ("lstm", {"max_length": 1024, "hidden_dim": 64})


def test_recipe_model_args_merge_with_the_flags_and_stay_with_their_family():
    from keras_lm.cli import train_command

    flags = train_command.FLAGS
    quickstart = {"qk_norm": "rms", "activation": "relu2"}
    for argv, model, model_args in (
            ([], "transformer", quickstart),
            (["--model_args=hidden_dim=64,activation=gelu"], "transformer",
             {"qk_norm": "rms", "activation": "gelu", "hidden_dim": 64}),
            (["--model=lstm"], "lstm", {}),  # the quickstart's options are the Transformer's
            (["--model=lstm", "--model_args=hidden_dim=64"], "lstm", {"hidden_dim": 64})):
        flags.unparse_flags()
        flags(["keras-lm train", *argv])
        config = train_command.config_from_flags()
        assert (config.model, config.model_args) == (model, model_args), argv
        config.validate()
    assert train_command.RECIPES["quickstart"]["model_args"] == quickstart  # not changed


def test_the_char_recipe_is_nanogpts_cpu_shape_with_rotary_positions():
    from keras_lm.cli import train_command

    flags = train_command.FLAGS
    flags.unparse_flags()
    flags(["keras-lm train", "--recipe=char"])
    config = train_command.config_from_flags()
    assert (config.tokenizer, config.sequence_length, config.batch_size) == ("char", 64, 12)
    assert (config.learning_rate, config.beta2, config.warmup_steps) == (1e-3, 0.99, 100)
    assert (config.train_minutes, config.dropout) == (5.0, 0.0)
    assert config.model_args == {"qk_norm": "rms", "activation": "relu2"}
    config.validate()  # the recipe's settings pass the run's own checks
