"""Shared fixtures: small real text corpora written on the fly."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

# One TensorFlow compute thread per pytest-xdist worker (and per subprocess a
# test starts): with a thread pool the size of the machine in every worker,
# the workers' threads outnumber the cores and spend the surplus waiting on
# each other. Set before any test imports TensorFlow; a user's setting wins.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
# XLA's LLVM back end at its lowest optimisation level (here and in the
# subprocesses tests start): the tests' programs are tiny and run a few times,
# so compiling them at -O2 cost far more than running them (a one-file run's
# scoring program: 5.1 s to compile at -O2, 0.9 s at -O0). The programs compute
# the same values; only the machine code is less optimised.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

WORDS = "the quick brown fox jumps over a lazy dog while seven tiny models learn".split()


def write_corpus(directory, num_files=4, lines=60, seed=0):
    """Writes `num_files` text files of simple, learnable English-like lines."""
    import random

    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(num_files):
        text = "".join(
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + ".\n"
            for _ in range(lines)
        )
        path = os.path.join(directory, f"doc_{i}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths.append(path)
    return paths


@pytest.fixture
def corpus(tmp_path):
    """Four small text files; returns their paths."""
    return write_corpus(str(tmp_path / "corpus"))


# --- the command line ----------------------------------------------------------

TINY = ["--recipe=tiny", "--sequence_length=32", "--batch_size=4", "--val_steps=1",
        "--sample_tokens=8"]


# The TensorBoard views a run writes by default (tensorboard_run tests them all):
# off in runs that do not look at them; at each evaluation they cost more than
# a tiny model's training steps.
NO_VIEWS = ["--noattention_maps", "--noposition_loss", "--noembedding_projector", "--nohparams"]


def keras_lm(*args, timeout=600):
    """Runs the installed console script; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "keras_lm.cli.main", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def exit_code_of(*args):
    """Runs `keras-lm args` through the CLI's entry point in this process; its exit code."""
    from keras_lm.cli.main import run

    with pytest.raises(SystemExit) as exit_info:
        run(["keras-lm", *args])
        sys.exit(0)
    return exit_info.value.code


def run_captured(*args):
    """Runs `keras-lm args` in this process, as a session fixture can (no capsys).

    Returns the exit code, what was written to stdout and stderr, and the
    messages of the Python warnings raised (pytest records warnings, so they
    would not reach stderr here).
    """
    import io
    import types
    import warnings

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = exit_code_of(*args)
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue(),
                                 warnings=[str(w.message) for w in caught])


def run_in_process(capsys, *args):
    """Runs `keras-lm args` in this process; returns (exit code, stdout, stderr)."""
    code = exit_code_of(*args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_usage_error(code, err, command, message):
    """Exit code 2 and one line on stderr: `keras-lm command: error: ...message...`."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert lines[0].startswith(f"keras-lm {command}: error:")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """One real tiny training run through the CLI's entry point, in this process
    (a TensorFlow start-up of its own would cost a third of the run; the console
    script itself runs in tests/cli/test_train_command.py). Returns (output dir, corpus files,
    `run_captured`'s result)."""
    root = tmp_path_factory.mktemp("run")
    files = write_corpus(str(root / "corpus"), num_files=5)
    output = root / "out"
    # No XLA: its compile outlasts these 20 tiny steps (the XLA training path
    # is tested in test_models); the decoding loop still compiles as ever.
    # Samples on (test_cli checks samples.txt); the other TensorBoard views,
    # which cost more than the training, are tested on `tensorboard_run`.
    # Its first 4 steps read 1 sequence each (`--batch_warmup_steps`), so the
    # warm-up's changing batch shape and token counts run through a whole run.
    result = run_captured("train", *TINY, "--nojit_compile", *NO_VIEWS, "--batch_warmup_steps=4",
                          f"--train_files={','.join(files[:4])}",
                          f"--val_files={files[4]}", f"--output_dir={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    return output, files, result


@pytest.fixture(scope="session")
def exported_run(trained, tmp_path_factory):
    """A copy of `trained`, exported once by `keras-lm export` (in this process) to every
    format: saved_model/, tflite/ (float32, int4) and litertlm/ (the same two),
    verified. Returns `(directory, stdout)`; tests copy it before changing anything.

    One export shared by tests/cli/test_export_command.py and tests/export/test_litertlm.py (each
    used to export the run on its own); fp16 and the full variant matrix run in
    slow tests.
    """
    import shutil

    output, _, _ = trained
    directory = tmp_path_factory.mktemp("exported_run") / "run"
    shutil.copytree(output, directory)
    result = run_captured("export", f"--model_dir={directory}",
                          "--format=saved_model,tflite,litertlm", "--quantize=none,int4", "--verify")
    assert result.returncode == 0, result.stdout + result.stderr
    return directory, result.stdout


@pytest.fixture(scope="session")
def tensorboard_run(tmp_path_factory):
    """One tiny `keras-lm train` run with every TensorBoard view on.

    Returns the output directory. 4 steps, 2 evaluation intervals, weight
    histograms and a profile of steps 2-3.
    """
    root = tmp_path_factory.mktemp("tensorboard_run")
    files = write_corpus(str(root / "corpus"), num_files=5)
    output = root / "out"
    # In this process (the CLI's own entry point, flags and all): a second
    # TensorFlow start-up would cost more than the run. No XLA: compiling
    # takes longer than these 4 steps.
    result = run_captured("train", "--recipe=tiny", "--sequence_length=32", "--batch_size=4",
                          "--val_steps=2", "--sample_tokens=8", "--steps=4", "--eval_interval=2",
                          "--verbose=0", "--nojit_compile", "--histograms", "--profile_steps=2,3",
                          f"--train_files={','.join(files[:4])}", f"--val_files={files[4]}",
                          f"--output_dir={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    return output


# --- a server in its own process ----------------------------------------------------


class ServedProcess:
    """A `keras-lm serve` subprocess: `url`, then `out`, `err`, `returncode` once stopped."""

    def __init__(self, process, url):
        self.process, self.url = process, url
        self.out = self.err = self.returncode = None


@contextlib.contextmanager
def served(*flags, timeout=300):
    """`keras-lm serve FLAGS` on a free port, ready (`/health` answers) when the block starts,
    stopped by Ctrl-C (SIGINT) when it ends; a server that dies or never answers fails."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_lm.cli.main", "serve", *flags, f"--port={port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = ServedProcess(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
            try:
                if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        yield server
        process.send_signal(signal.SIGINT)
        server.out, server.err = process.communicate(timeout=60)
        server.returncode = process.returncode
    finally:
        if process.poll() is None:
            process.kill()


# --- a real browser (the `browser` marker) ----------------------------------------------

@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by selenium through the system chromedriver.

    A missing browser fails the test rather than skipping it: `-m browser`
    runs only these tests, and a skipped run would pass with nothing checked.
    """
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail("the browser tests need Debian's Chromium and its driver: "
                    "apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,800"):
        options.add_argument(argument)
    # The system driver: selenium must not look for (download) one of its own.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    yield driver
    driver.quit()


# --- running in parallel (pytest-xdist) -------------------------------------------

# Session fixtures that train a model: the tests that use one run on the same
# worker, so each fixture trains once (not once per worker). (`exported_run`
# uses `trained`, so its tests join that group.) Every other test
# runs on its module's worker, so a module's fixtures are built once too.
SHARED_RUNS = ("trained", "tensorboard_run", "pretrained_runs")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = next((name for name in SHARED_RUNS if _uses_session_fixture(item, name)),
                     item.nodeid.split("::")[0])
        item.add_marker(pytest.mark.xdist_group(group))


def _uses_session_fixture(item, name):
    """Whether `item` uses conftest's session fixture `name` (not a module's namesake)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get(name, ()) if info else ()
    return bool(definitions) and definitions[-1].scope == "session"


# A tiny untrained run directory with a prompt template: the serving tests' base.
CONTEXT = 64
TEMPLATE = "Q: {prompt}\nA: "


def make_base(directory, config=None):
    """A tiny untrained Transformer run directory (byte tokenizer, context `CONTEXT`)."""
    import keras

    from keras_lm.io_utils import write_json
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    os.makedirs(directory)
    keras.utils.set_random_seed(5)
    TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=CONTEXT,
                              pad_id=256).save(str(directory / "model.keras"))
    ByteTokenizer().save(str(directory / "tokenizer.json"))
    write_json(str(directory / "config.json"), {
        "model": "transformer", "preset": "tiny", "tokenizer": "byte",
        "sequence_length": CONTEXT, **(config or {})})
    return directory


# --- pretrained keras-hub models (tests/pretrained) -------------------------------

# Tiny random keras-hub presets of each family and their imports, built once per
# session (`pretrained_runs` is a shared run: its tests share a worker). Offline:
# HF_HUB_OFFLINE is set so that a handle never waits on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
PRETRAINED_FAMILIES = ("gpt2", "gemma3", "llama3")


@pytest.fixture(scope="session")
def pretrained_runs(tmp_path_factory):
    """`{name: run directory}` for each family's tiny preset and `hf_llama3`, a Hugging
    Face checkpoint (written by keras-hub's `export_to_transformers`), imported; and
    `{name: preset path}` under the key "presets"."""
    from keras_lm.pretrained import import_preset
    from keras_lm.pretrained.tiny_presets import (write_tiny_preset,
                                                  write_tiny_transformers_checkpoint)

    root = tmp_path_factory.mktemp("pretrained")
    presets = {family: write_tiny_preset(family, str(root / "presets"))
               for family in PRETRAINED_FAMILIES}
    presets["hf_llama3"] = write_tiny_transformers_checkpoint("llama3", str(root / "presets"))
    runs = {name: import_preset(path, str(root / "runs" / name)) for name, path in presets.items()}
    return {**runs, "presets": presets}


@pytest.fixture(scope="session")
def hub_models(pretrained_runs):
    """`{family: (keras-hub CausalLM from the preset, keras_lm model loaded from the run)}`.

    The keras-hub model's byte-level BPE is aligned as keras_lm's is
    (`compat.align_keras_hub_bpe`): unaligned, its eager `generate` would
    tokenize a prompt with a whitespace run unlike its own graph path.
    """
    import keras_hub

    import keras_lm
    from keras_lm import compat

    models = {}
    for family in PRETRAINED_FAMILIES:
        hub = keras_hub.models.CausalLM.from_preset(pretrained_runs["presets"][family])
        compat.align_keras_hub_bpe(hub.preprocessor.tokenizer)
        models[family] = (hub, keras_lm.load(pretrained_runs[family]))
    return models
