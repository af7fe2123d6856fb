"""Loading trained models from Python: `import keras_lm` registers the classes,
`keras_lm.load` attaches the tokenizer and the run's settings. Each check runs
in a fresh process, as a user's script would."""

import os
import shutil
import subprocess
import sys

import pytest

from keras_lm.errors import UsageError


def run_python(code, cwd):
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """A run directory as `train` leaves it, with an (untrained) LSTM."""
    from keras_lm.models import LSTMLM
    from keras_lm.tokenizers import ByteTokenizer

    directory = tmp_path_factory.mktemp("lstm_run")
    model = LSTMLM.from_preset("tiny", vocabulary_size=259, pad_id=256)
    model.build()
    model.save(str(directory / "model.keras"))
    ByteTokenizer().save(str(directory / "tokenizer.json"))
    return directory


def test_both_families_load_in_a_fresh_process(trained, lstm_run, tmp_path):
    output, _, _ = trained
    # A checkpoint finds the tokenizer in its parent directory.
    code = f"""
import keras, keras_lm
for path in ({str(output / 'model.keras')!r}, {str(lstm_run / 'model.keras')!r}):
    print(type(keras.models.load_model(path)).__name__)
model = keras_lm.load({str(output)!r})
text = model.generate("x", 10)
assert isinstance(text, str) and len(text.encode()) <= 10, text
assert model.run_config["recipe"] == "tiny", model.run_config
lstm = keras_lm.load({str(lstm_run)!r})
assert lstm.run_config == {{}} and isinstance(lstm.generate("x", 5), str)
best = keras_lm.load({str(output / 'checkpoints' / 'best.keras')!r})
assert best.tokenizer.vocabulary_size == 259 and best.run_config["recipe"] == "tiny"
print("ok")
"""
    assert run_python(code, tmp_path).split() == ["TransformerLM", "LSTMLM", "ok"]


def test_a_task_run_loads_with_its_id_tokenizer(tmp_path):
    from keras_lm.data.synthetic import Task, task_tokenizer
    from keras_lm.io_utils import write_json
    from keras_lm.models import TransformerLM

    tokenizer = task_tokenizer(Task("induction", 32, 16))
    model = TransformerLM.from_preset("tiny", vocabulary_size=tokenizer.vocabulary_size,
                                      sequence_length=32, pad_id=tokenizer.pad_id)
    model.build()
    model.save(str(tmp_path / "model.keras"))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    write_json(str(tmp_path / "config.json"), {"task": "induction", "vocabulary_size": 16})
    code = f"""
import keras_lm
model = keras_lm.load({str(tmp_path)!r})
print(type(model.tokenizer).__name__, model.run_config["task"], model.vocabulary_size)
"""
    assert run_python(code, tmp_path).split() == ["IdTokenizer", "induction", "20"]


def test_load_errors_name_the_path_argument(tmp_path, lstm_run):
    import keras_lm

    with pytest.raises(UsageError, match=r"^path: no model.keras in") as error:
        keras_lm.load(tmp_path)
    assert error.value.argument == "path"
    lonely = tmp_path / "lonely.keras"
    shutil.copy(lstm_run / "model.keras", lonely)
    with pytest.raises(UsageError, match=r"^path: no tokenizer.json beside"):
        keras_lm.load(lonely)
    with pytest.raises(UsageError, match=r"^path: .* is neither a run directory nor a .keras"):
        keras_lm.load(tmp_path / "missing.txt")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.keras").write_text("not a zip")
    shutil.copy(lstm_run / "tokenizer.json", tmp_path / "broken")
    with pytest.raises(UsageError, match=r"^path: cannot load"):
        keras_lm.load(tmp_path / "broken")
    assert os.path.isfile(lstm_run / "model.keras")  # nothing was touched
