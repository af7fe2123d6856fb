"""What `keras-lm train` prints: one line per evaluation, a summary, nothing else."""

import io

from conftest import assert_one_line_usage_error, run_in_process
from keras_lm.training.console import Console


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_piped_run_prints_one_line_per_evaluation_and_a_summary(trained):
    output, _, result = trained  # stdout and stderr are not terminals
    assert "\r" not in result.stdout and "\r" not in result.stderr
    assert "Epoch" not in result.stdout
    noise = result.stderr + "\n".join(result.warnings)
    assert "ran out of data" not in noise and "shuffle=True" not in noise
    evaluations = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in evaluations] == ["10", "20"]  # the tiny recipe: 20 steps
    for figure in ("tokens", "loss", "val", "bits/byte", "tokens/s", "time left"):
        assert all(figure in line for line in evaluations), (figure, evaluations)
    for summary in ("done in", "bits per byte", "xz -9e", "tokens seen",
                    f"outputs in {output}", "next:", f"keras-lm generate --model_dir={output}",
                    f"tensorboard --logdir {output}/logs"):
        assert summary in result.stdout, summary
    assert len(result.stdout) < 5000


def test_live_line_only_on_a_terminal_at_verbose_1():
    for verbose, stream, live in ((1, Terminal(), True), (1, io.StringIO(), False),
                                  (2, Terminal(), False), (0, Terminal(), False)):
        console = Console(verbose, stream)
        console.update_live("step 5/10")
        console.line("kept")
        written = stream.getvalue()
        assert ("\r" in written) == live, (verbose, written)
        assert ("kept\n" in written) == bool(verbose), (verbose, written)
        assert ("step 5/10" in written) == live


def test_sequence_length_alone_fits_the_samples_to_the_context():
    from keras_lm.cli import train_command

    flags = train_command.FLAGS
    flags.unparse_flags()
    flags(["keras-lm train", "--sequence_length=64"])
    config = train_command.config_from_flags()
    config.validate()  # the quickstart's 100-token samples would not fit
    assert config.sample_length() == 63
    flags.unparse_flags()
    flags(["keras-lm train", "--sequence_length=64", "--sample_tokens=20"])
    assert train_command.config_from_flags().sample_length() == 20
    flags.unparse_flags()


def test_generate_checks_the_prompt_before_echoing_it(trained, capsys):
    output, _, _ = trained
    prompt = "x" * 100  # the tiny run's context is 32 tokens
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={output}",
                                    f"--prompt={prompt}", "--max_new_tokens=5")
    assert_one_line_usage_error(code, err, "generate", "--prompt: 101 tokens")
    assert out == ""  # nothing of the prompt was echoed before the error
