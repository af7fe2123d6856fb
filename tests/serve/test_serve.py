"""keras-lm serve: a real server (uvicorn on a free localhost port) driven by the official
`openai` client and plain HTTP; batching that does not change a request's text; errors."""

import json
import queue
import socket
import threading

import httpx
import keras
import numpy as np
import openai
import pytest

from conftest import assert_one_line_usage_error, run_in_process, served
from keras_lm.generation import Row, RowBatch, TextStream
from keras_lm.serve import ServerThread
from keras_lm.serve.engine import Sequence

CONTEXT = 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A run directory with a tiny random Transformer and the byte tokenizer."""
    from keras_lm.models import TransformerLM
    from keras_lm.tokenizers import ByteTokenizer

    run = tmp_path_factory.mktemp("serve_run")
    keras.utils.set_random_seed(3)
    model = TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=CONTEXT)
    model.save(str(run / "model.keras"))
    ByteTokenizer().save(str(run / "tokenizer.json"))
    return run


@pytest.fixture(scope="module")
def server(model_dir):
    """One server for the module: batches of up to 2 rows (both batch sizes compiled)."""
    import keras_lm

    model = keras_lm.load(model_dir)
    with ServerThread(model, model.tokenizer, max_batch_size=2, model_name="tiny") as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def complete(server, **body):
    reply = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_greedy_text_equals_keras_lm_generate(server, client, model_dir, capsys):
    prompt = "the quick"
    answer = client.completions.create(model="tiny", prompt=prompt, max_tokens=12, temperature=0)
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={model_dir}",
                                    f"--prompt={prompt}", "--sampler=greedy",
                                    "--max_new_tokens=12")
    assert code == 0, err
    assert out == prompt + answer.choices[0].text + "\n"
    usage = answer.usage
    assert usage.prompt_tokens == 1 + len(prompt)  # <bos> and one byte each
    assert 0 < usage.completion_tokens <= 12
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_a_list_of_prompts_with_n_gives_each_prompt_its_choices(server, client):
    prompts = ["def ", "import os"]
    answer = client.completions.create(model="tiny", prompt=prompts, max_tokens=6, n=2,
                                       temperature=1.0, seed=11)
    assert [c.index for c in answer.choices] == [0, 1, 2, 3]
    # Choice j of each prompt draws with seed + j: each equals that prompt asked alone.
    for index, choice in enumerate(answer.choices):
        alone = complete(server, prompt=prompts[index // 2], max_tokens=6, temperature=1.0,
                         seed=11 + index % 2)
        assert alone["choices"][0]["text"] == choice.text
    assert answer.usage.prompt_tokens == sum(1 + len(p) for p in prompts)
    assert answer.usage.completion_tokens <= 4 * 6


def test_streaming_sends_the_same_text_piece_by_piece(server, client):
    options = dict(model="tiny", prompt="over a", max_tokens=20, temperature=0.9, seed=5)
    whole = client.completions.create(**options)
    chunks = list(client.completions.create(**options, stream=True,
                                            stream_options={"include_usage": True}))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == whole.choices[0].text
    assert sum(1 for t in texts if t) >= 2  # it came in pieces
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stop_strings_and_echo(server):
    first = complete(server, prompt="a", max_tokens=20, temperature=0)["choices"][0]["text"]
    # Two whole characters from its middle (no U+FFFD: part of a character may decode as one).
    stop = next(first[i:i + 2] for i in range(2, len(first) - 1) if "\ufffd" not in first[i:i + 2])
    cut = complete(server, prompt="a", max_tokens=20, temperature=0, stop=[stop], echo=True)
    assert cut["choices"][0]["text"] == "a" + first[: first.index(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"


def test_a_seeded_request_gives_the_same_text_alone_and_inside_a_batch(server):
    options = dict(max_tokens=10, temperature=0.9, top_p=0.95, seed=7)
    alone = complete(server, prompt="lazy dog", **options)["choices"][0]["text"]
    # One request, two prompts: one batch of 2 rows, the other prompt shorter.
    batched = complete(server, prompt=["fox", "lazy dog"], **options)["choices"][1]["text"]
    assert batched == alone
    # Two requests with different samplers and limits, submitted as one batch.
    engine = server.engine
    rows = engine.encode(["lazy dog"], 10, temperature=0.9, top_p=0.95, seed=7)
    other = engine.encode(["a much longer prompt"], 4, temperature=0.3, top_k=5, seed=1)
    events = queue.Queue()

    def sequence(row, index):
        return Sequence(row, TextStream(engine.tokenizer), lambda *e: events.put((index, *e)))

    engine.submit([sequence(other[0], 1), sequence(rows[0], 0)])
    texts, done = ["", ""], 0
    while done < 2:
        index, kind, value = events.get(timeout=60)
        texts[index] += value if kind == "text" else ""
        done += kind == "done"
    assert texts[0] == alone


def test_row_batch_rows_ignore_their_neighbours_and_padding(server):
    model, tokenizer = server.engine.model, server.engine.tokenizer
    special = dict(end_id=-1, pad_id=tokenizer.pad_id,
                   banned_ids=(tokenizer.pad_id, tokenizer.bos_id))

    def tokens(rows, batch_size):
        batch, new = RowBatch(model, rows, batch_size, **special), [[] for _ in rows]
        while not batch.finished:
            for row, ids in enumerate(batch.step(3)):
                new[row] += ids
        return new

    row = Row([tokenizer.bos_id, 100, 101, 102], max_new_tokens=9, temperature=1.0, top_k=20,
              seed=4)
    alone = tokens([row], 1)[0]
    assert len(alone) == 9  # end_id -1: the limit
    neighbour = Row([tokenizer.bos_id, 50], max_new_tokens=3, temperature=0.5, seed=9)
    assert tokens([neighbour, row], 2)[1] == alone
    assert tokens([row], 2)[0] == alone  # a padding row


def test_a_row_whose_client_left_is_stopped(server):
    engine = server.engine
    events = queue.Queue()
    row = engine.encode(["x"], 30, temperature=1.0, seed=0)[0]
    sequence = Sequence(row, TextStream(engine.tokenizer), lambda *e: events.put(e))
    sequence.on_event = lambda kind, value: (setattr(sequence, "cancelled", True),
                                             events.put((kind, value)))
    engine.submit([sequence])
    while (event := events.get(timeout=60))[0] != "done":
        pass
    assert event[1] in ("cancelled", "stop")  # "stop": it reached <eos> in its first call
    assert sequence.num_tokens < 30


BAD_REQUESTS = {
    "wrong type": ({"prompt": "x", "max_tokens": "ten"}, "max_tokens"),
    "bool for int": ({"prompt": "x", "max_tokens": True}, "max_tokens"),
    "prompt of numbers": ({"prompt": [1, 2]}, "prompt"),
    "no prompt": ({"max_tokens": 3}, "prompt"),
    "unknown field": ({"prompt": "x", "max_token": 3}, "max_token"),
    "max_tokens 0": ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    "max_tokens negative": ({"prompt": "x", "max_tokens": -4}, "max_tokens"),
    "max_tokens past the context": ({"prompt": "x", "max_tokens": CONTEXT}, "max_tokens"),
    "temperature below 0": ({"prompt": "x", "temperature": -0.1}, "temperature"),
    "top_p 0": ({"prompt": "x", "top_p": 0}, "top_p"),
    "top_p over 1": ({"prompt": "x", "top_p": 1.01}, "top_p"),
    "prompt that does not fit": ({"prompt": "x" * 28, "max_tokens": 4}, "prompt"),
    "too many stop strings": ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    "logprobs over 5": ({"prompt": "x", "logprobs": 6}, "logprobs"),
    "logprobs negative": ({"prompt": "x", "logprobs": -1}, "logprobs"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_get_an_openai_error(server, case):
    body, param = BAD_REQUESTS[case]
    reply = httpx.post(server.url + "/v1/completions", json=body, timeout=60)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param in error["message"]


def test_bodies_over_1_mb_are_413_broken_json_400_and_the_server_keeps_serving(server, client):
    big = json.dumps({"prompt": "x" * (1 << 20)}).encode()
    json_type = {"Content-Type": "application/json"}
    for content, status in ((big, 413), (b'{"prompt": "x", ', 400), (b"[1, 2]", 400)):
        reply = httpx.post(server.url + "/v1/completions", content=content, headers=json_type,
                           timeout=60)
        assert reply.status_code == status, reply.text
        assert reply.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model="tiny", prompt="x", temperature=-1)
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.completions.create(model="gpt-4", prompt="x")
    answer = client.completions.create(model="tiny", prompt="x", max_tokens=2)
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_chat_completions_say_the_model_has_no_chat_template(server, client):
    with pytest.raises(openai.BadRequestError, match="no chat template"):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}])


def test_a_client_that_leaves_mid_stream_does_not_stop_the_server(server):
    body = {"prompt": "the", "max_tokens": 30, "temperature": 1.0, "seed": 3, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as reply:
        next(reply.iter_lines())  # the first event, then hang up
    assert complete(server, prompt="the", max_tokens=3)["choices"][0]["finish_reason"]


def test_models_health_metrics_and_the_playground(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"
    health = httpx.get(server.url + "/health").json()
    assert health == {"status": "ok", "model": "tiny", "context": CONTEXT, "max_batch_size": 2,
                      "queued_rows": 0, "active_rows": 0, "max_queue": None}
    complete(server, prompt="x", max_tokens=2)
    httpx.post(server.url + "/v1/completions", json={"prompt": "x", "top_p": 2})
    page = httpx.get(server.url + "/metrics")
    assert page.headers["content-type"].startswith("text/plain")
    for line in ('keras_lm_requests_total{endpoint="/v1/completions",status="200"}',
                 'keras_lm_requests_total{endpoint="/v1/completions",status="400"}',
                 "keras_lm_completion_tokens_total", "keras_lm_tokens_per_second",
                 'keras_lm_request_latency_recent_seconds{quantile="0.99"}',
                 "keras_lm_time_to_first_token_seconds_bucket", "keras_lm_batch_rows_count"):
        assert line in page.text, line
    playground = httpx.get(server.url + "/")
    assert playground.status_code == 200 and '<textarea id="prompt"' in playground.text
    # Nothing is fetched from elsewhere: no script, style or image from another host.
    assert "src=\"http" not in playground.text and "href=\"http" not in playground.text
    assert "://" not in playground.text.split("<script>")[1]


def test_logprobs_are_the_models_own_log_probabilities_of_the_tokens(server, client):
    prompt = "the quick"
    answer = complete(server, prompt=prompt, max_tokens=10, temperature=0, logprobs=3)
    choice = answer["choices"][0]
    logprobs = choice["logprobs"]
    tokens = logprobs["tokens"]
    assert 0 < len(tokens) == answer["usage"]["completion_tokens"]
    assert len(logprobs["token_logprobs"]) == len(logprobs["top_logprobs"]) == len(tokens)
    # The same figures from the model's own logits, over prompt + new tokens.
    engine = server.engine
    new_ids = engine.tokenizer.encode(choice["text"]).numpy().tolist()
    assert len(new_ids) == len(tokens)  # (the tiny model's text is re-encoded as it was made)
    ids = np.array([[engine.tokenizer.bos_id] + list(prompt.encode()) + new_ids], np.int32)
    log_probs = keras.ops.log_softmax(engine.model(ids[:, :-1]), axis=-1).numpy()[0]
    expected = log_probs[np.arange(len(ids[0]) - 1), ids[0, 1:]][-len(tokens):]
    np.testing.assert_allclose(logprobs["token_logprobs"], expected, atol=1e-4)
    for token, value, top in zip(tokens, logprobs["token_logprobs"], logprobs["top_logprobs"],
                                 strict=True):
        assert 0 < len(top) <= 3
        first, first_value = next(iter(top.items()))  # greedy: the likeliest token is the one
        assert first == token and first_value == pytest.approx(value, abs=1e-6)
        assert list(top.values()) == sorted(top.values(), reverse=True)
    assert logprobs["text_offset"][0] == 0 and logprobs["text_offset"] == sorted(
        logprobs["text_offset"])
    # Streamed: the same figures with the last chunk; echoed: offsets after the prompt.
    streamed = client.completions.create(model="tiny", prompt=prompt, max_tokens=10,
                                         temperature=0, logprobs=3, stream=True)
    last = [chunk.choices[0] for chunk in streamed][-1]
    assert last.finish_reason and last.logprobs.token_logprobs == logprobs["token_logprobs"]
    echoed = client.completions.create(model="tiny", prompt=prompt, max_tokens=10,
                                       temperature=0, logprobs=0, echo=True).choices[0]
    assert echoed.logprobs.text_offset[0] == len(prompt)
    assert echoed.logprobs.top_logprobs == [{}] * len(tokens)
    # Without `logprobs`: null, as OpenAI.
    assert complete(server, prompt=prompt, max_tokens=2)["choices"][0]["logprobs"] is None


def test_bad_model_dir_or_busy_port_is_a_one_line_error(tmp_path, capsys):
    code, _, err = run_in_process(capsys, "serve", f"--model_dir={tmp_path / 'missing'}",
                                  "--port=0")
    assert_one_line_usage_error(code, err, "serve", "--model_dir")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = run_in_process(capsys, "serve", f"--model_dir={tmp_path}", f"--port={port}")
    assert_one_line_usage_error(code, err, "serve", "already in use")
    assert "--port" in err
    code, _, err = run_in_process(capsys, "serve", "--max_batch_size=0")
    assert_one_line_usage_error(code, err, "serve", "--max_batch_size must be >= 1")


def test_concurrent_clients_all_get_complete_answers(server):
    results = []

    def ask(i):
        results.append(complete(server, prompt=f"{i} ", max_tokens=5, temperature=0.8, seed=i))

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 6
    assert all(r["choices"][0]["finish_reason"] in ("stop", "length") for r in results)


@pytest.mark.slow
def test_keras_lm_serve_in_a_subprocess_serves_until_ctrl_c(model_dir, capsys):
    with served(f"--model_dir={model_dir}", "--max_batch_size=2") as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        answer = client.completions.create(model=model_dir.name, prompt="the quick",
                                           max_tokens=12, temperature=0)
        code, out, err = run_in_process(capsys, "generate", f"--model_dir={model_dir}",
                                        "--prompt=the quick", "--sampler=greedy",
                                        "--max_new_tokens=12")
        assert out == "the quick" + answer.choices[0].text + "\n"
    assert server.returncode == 0, server.err
    assert f"serving '{model_dir.name}' at {server.url}" in server.out
    assert server.out.strip().endswith("stopped")
    assert "Traceback" not in server.err
