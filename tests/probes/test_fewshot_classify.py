"""The few-shot classification probe: label scores, shots that do not fit, the CLI."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import assert_one_line_usage_error, run_in_process

from keras_lm.adaptation.labeled_data import Row
from keras_lm.errors import UsageError
from keras_lm.models import LSTMLM
from keras_lm.probes.fewshot_classify import check_shots, fewshot_classify, label_scores
from keras_lm.scoring import token_scores
from keras_lm.tokenizers import ByteTokenizer


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("fewshot_base")
    keras.utils.set_random_seed(0)
    # An LSTM: its scoring compiles without XLA, in a fraction of the time.
    model = LSTMLM.from_preset("tiny", vocabulary_size=259, sequence_length=32, pad_id=256)
    model.save(str(root / "model.keras"))
    ByteTokenizer().save(str(root / "tokenizer.json"))
    data = root / "labels.jsonl"
    with open(data, "w") as f:
        for i in range(60):
            f.write(json.dumps({"text": "ab"[i % 2] * (1 + i % 3), "label": "xy"[i % 2]}) + "\n")
    return str(root), str(data), model


def test_a_label_scores_its_log_likelihood_after_the_prompt(base):
    _, _, model = base
    tokenizer = ByteTokenizer()
    queries = [Row("ab", "x", 1), Row("b", "y", 2)]
    scores, longest = label_scores(model, tokenizer, "a # x\n", queries, ["x", "yy"], "{text} # ",
                                   "\n")
    # By hand: <bos> "a # x\nab # " then "yy\n", scored token by token.
    prompt = [257] + list(b"a # x\nab # ")
    sequence = np.full((1, 33), 256, np.int32)  # the probe's shape: one compiled function
    sequence[0, :len(prompt) + 3] = prompt + list(b"yy\n")
    log_probs = token_scores(model)(sequence[:, :-1], sequence[:, 1:])[0].numpy()[0]
    np.testing.assert_allclose(scores[0, 1], log_probs[len(prompt) - 1:len(prompt) + 2].sum(),
                               atol=1e-4)
    assert longest == len(prompt) + 3
    # Past the context: reported, not cut.
    scores, longest = label_scores(model, tokenizer, "a # x\n" * 8, queries, ["x", "y"],
                                   "{text} # ", "\n")
    assert scores is None and longest > 33


def test_probe_table_png_and_shots_that_do_not_fit(base):
    model_dir, data, model = base
    # The module's model object: its compiled scoring function is reused.
    result = fewshot_classify(model_dir, data, (0, 1, 2, 8), finetune_steps=2,
                              loaded=(model, ByteTokenizer(), {}))
    rows = {row["shots"]: row for row in result["rows"]}
    assert rows[0]["fits"] and rows[0]["finetuned_accuracy"] is None
    assert 0 <= rows[2]["fewshot_accuracy"] <= 1 and 0 <= rows[2]["finetuned_accuracy"] <= 1
    assert sum(rows[2]["fewshot_predictions"].values()) == result["queries"]
    # 8 examples of ~7 bytes and a query: past the 32-token context.
    assert not rows[8]["fits"] and rows[8]["fewshot_accuracy"] is None
    assert rows[8]["longest_prompt_tokens"] > 33 and rows[8]["finetuned_accuracy"] is not None
    probes = os.path.join(model_dir, "probes")
    with open(os.path.join(probes, "fewshot_classify.png"), "rb") as f:
        assert f.read(4) == b"\x89PNG"
    with open(os.path.join(probes, "fewshot_classify.md")) as f:
        assert "| 8 | does not fit (" in f.read()


def test_bad_probe_arguments_are_one_line(base, capsys):
    model_dir, _, _ = base
    code, _, err = run_in_process(capsys, "probe", "--probe=fewshot_classify",
                                  f"--model_dir={model_dir}")
    assert_one_line_usage_error(code, err, "probe", "--data: fewshot_classify needs labelled rows")
    code, _, err = run_in_process(capsys, "probe", "--probe=icl_score", "--shots=1",
                                  f"--model_dir={model_dir}")
    assert_one_line_usage_error(code, err, "probe", "--shots: only for --probe=fewshot_classify")
    with pytest.raises(UsageError, match="^shots must be integers >= 0"):
        check_shots("1,-2")


@pytest.mark.slow
def test_probe_command_runs_fewshot_classify(base, capsys):
    model_dir, data, _ = base
    code, out, err = run_in_process(capsys, "probe", "--probe=fewshot_classify",
                                    f"--model_dir={model_dir}", f"--data={data}",
                                    "--shots=0,2", "--finetune_steps=2")
    assert code == 0, err
    assert [row["shots"] for row in json.loads(out)["rows"]] == [0, 2]
