"""`keras-lm serve --model=DIR`: the SavedModel `keras-lm export` wrote, served without Keras.

Uses conftest's `exported_run` (the tiny `trained` run, exported once for the
session), so these tests join that run's group and add no training or export.
"""

import json

import httpx
import pytest

from conftest import assert_one_line_usage_error, run_in_process, served
from keras_lm.errors import UsageError
from keras_lm.serve import ServerThread
from keras_lm.serve.saved_model_engine import load_saved_model

PROMPT = "the "


@pytest.fixture(scope="module")
def servers(exported_run):
    """The run served twice, side by side: its Keras model and its SavedModel."""
    import keras_lm

    directory, _ = exported_run
    model = keras_lm.load(directory)
    saved_model, tokenizer = load_saved_model(str(directory / "saved_model"))
    with ServerThread(model, model.tokenizer, max_batch_size=1, model_name="run") as keras_server, \
            ServerThread(saved_model, tokenizer, max_batch_size=2, model_name="run") as exported:
        yield keras_server, exported


def complete(server, **body):
    reply = httpx.post(server.url + "/v1/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_greedy_text_through_the_saved_model_equals_the_keras_model(servers):
    keras_server, exported = servers
    body = dict(prompt=[PROMPT, "and"], max_tokens=12, temperature=0)
    through_keras = complete(keras_server, **body)
    through_saved_model = complete(exported, **body)
    texts = [c["text"] for c in through_saved_model["choices"]]
    assert texts == [c["text"] for c in through_keras["choices"]]
    assert any(texts)
    assert through_saved_model["usage"] == through_keras["usage"]
    assert [c["finish_reason"] for c in through_saved_model["choices"]] == [
        c["finish_reason"] for c in through_keras["choices"]]


def test_a_stream_sends_the_whole_text_as_one_chunk_then_the_end(servers):
    _, exported = servers
    whole = complete(exported, prompt=PROMPT, max_tokens=8, temperature=0, stop=["\n"])
    body = dict(prompt=PROMPT, max_tokens=8, temperature=0, stop=["\n"], stream=True)
    with httpx.stream("POST", exported.url + "/v1/completions", json=body, timeout=120) as reply:
        events = [line[len("data: "):] for line in reply.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event)["choices"][0] for event in events[:-1]]
    assert "".join(c["text"] for c in chunks) == whole["choices"][0]["text"]
    assert len(chunks) <= 2 and chunks[-1]["finish_reason"] == whole["choices"][0]["finish_reason"]


def test_the_same_api_surface_and_a_seeded_request_repeats(servers):
    _, exported = servers
    body = dict(prompt=PROMPT, max_tokens=6, temperature=1.0, seed=5, n=2)
    first, again = complete(exported, **body), complete(exported, **body)
    assert [c["text"] for c in first["choices"]] == [c["text"] for c in again["choices"]]
    assert httpx.get(exported.url + "/v1/models").json()["data"][0]["id"] == "run"
    health = httpx.get(exported.url + "/health").json()
    assert health["status"] == "ok" and health["context"] == 32
    assert "keras_lm_completion_tokens_total" in httpx.get(exported.url + "/metrics").text
    too_long = httpx.post(exported.url + "/v1/completions",
                          json={"prompt": "x" * 40, "max_tokens": 4}, timeout=60)
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "prompt"
    logprobs = httpx.post(exported.url + "/v1/completions",
                          json={"prompt": PROMPT, "logprobs": 1}, timeout=60)
    assert logprobs.status_code == 400 and "--model_dir for logprobs" in logprobs.text
    chat = httpx.post(exported.url + "/v1/chat/completions",
                      json={"messages": [{"role": "user", "content": "hi"}]}, timeout=60)
    assert chat.status_code == 400 and "no chat template" in chat.text


def test_a_conversation_with_earlier_replies_is_not_one_prompt_string(servers):
    _, exported = servers
    engine = exported.engine
    tokenizer = engine.tokenizer
    one_turn = [tokenizer.bos_id] + tokenizer.encode("ab").numpy().tolist()
    assert engine.encode([one_turn], 2)[0].prompt_text == "ab"
    with pytest.raises(UsageError, match="messages: a SavedModel takes the conversation"):
        engine.encode([one_turn + [tokenizer.eos_id, 99]], 2)


def test_bad_model_flags_are_one_line_errors(exported_run, tmp_path, capsys):
    directory, _ = exported_run
    cases = [
        ([f"--model={directory}/saved_model", f"--model_dir={directory}"], "give one"),
        ([f"--model={tmp_path / 'missing'}"], "--model: "),
        ([f"--model={directory}"], "is not a SavedModel"),
        ([f"--model={directory}/config.json"], "is not a directory"),
    ]
    for flags, message in cases:
        code, out, err = run_in_process(capsys, "serve", *flags, "--port=0")
        assert_one_line_usage_error(code, err, "serve", message)
        assert "--model" in err and not out


@pytest.mark.slow
def test_keras_lm_serve_model_in_a_subprocess_gives_keras_lm_generate_text(exported_run, capsys):
    directory, _ = exported_run
    with served(f"--model={directory}/saved_model") as server:
        answer = complete(type("S", (), {"url": server.url}), model=directory.name,
                          prompt=PROMPT, max_tokens=12, temperature=0)
        code, out, err = run_in_process(capsys, "generate", f"--model_dir={directory}",
                                        f"--prompt={PROMPT}", "--sampler=greedy",
                                        "--max_new_tokens=12")
        assert code == 0, err
        assert out == PROMPT + answer["choices"][0]["text"] + "\n"
    assert server.returncode == 0, server.err
    assert f"serving '{directory.name}' at {server.url}" in server.out
    assert server.out.strip().endswith("stopped")
    assert "Traceback" not in server.err


@pytest.mark.slow
def test_a_fine_tuned_saved_model_applies_its_template_once_and_chats_one_turn(tmp_path):
    """The template is applied by the server (through `sample_raw`), as for the Keras model."""
    import keras_lm
    from keras_lm.export.saved_model import export_saved_model
    from conftest import TEMPLATE, make_base

    run = make_base(tmp_path / "tuned", {"prompt_template": TEMPLATE, "finetune_kind": "pairs"})
    model = keras_lm.load(run)
    model.tokenizer.prompt_template = TEMPLATE  # as `keras-lm finetune` saves it
    export_saved_model(model, model.tokenizer, str(run / "saved_model"))
    saved_model, tokenizer = load_saved_model(str(run / "saved_model"))
    assert tokenizer.prompt_template == TEMPLATE
    one_turn = {"messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "what is 2+2?"}],
                "max_tokens": 8, "temperature": 0}
    completion = dict(prompt="what is 2+2?", max_tokens=8, temperature=0, echo=True)
    answers = []
    for source in (model, saved_model):
        with ServerThread(source, tokenizer, max_batch_size=1, warm_up=False) as server:
            chat = httpx.post(server.url + "/v1/chat/completions", json=one_turn, timeout=120)
            assert chat.status_code == 200, chat.text
            answers.append((chat.json()["choices"][0]["message"]["content"],
                            complete(server, **completion)["choices"][0]["text"]))
    assert answers[0] == answers[1]
    templated = TEMPLATE.format(prompt="what is 2+2?")
    assert answers[1][1].startswith(templated) and len(answers[1][1]) > len(templated)
    with ServerThread(saved_model, tokenizer, max_batch_size=1, warm_up=False) as server:
        turns = one_turn["messages"] + [{"role": "assistant", "content": "4"},
                                        {"role": "user", "content": "and 3+3?"}]
        chat = httpx.post(server.url + "/v1/chat/completions",
                          json={**one_turn, "messages": turns}, timeout=120)
    assert chat.status_code == 400 and chat.json()["error"]["param"] == "messages"
    assert "one user turn" in chat.json()["error"]["message"]
