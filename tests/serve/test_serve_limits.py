"""keras-lm serve left running: the API key, Host/Origin checks, a full queue, deadlines,
bounds on every number, disconnects counted, continuous batching's bounded programs.

The decoding thread is held between two compiled calls (`Gate`, through the engine's
`on_batch` hook) where a test needs a request to wait or to be mid-decode at a known time.
"""

import concurrent.futures
import re
import socket
import threading
import time

import httpx
import keras
import pytest
from fastapi.testclient import TestClient

from conftest import assert_one_line_usage_error, run_in_process, served
from keras_lm.generation.row_batch import prefill_programs
from keras_lm.generation.slot_batch import insert_programs, slot_programs
from keras_lm.serve import ServerThread
from keras_lm.serve.continuous_engine import ContinuousEngine
from keras_lm.serve.security import Guard

CONTEXT = 48
KEY = "test-key-1234"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def model():
    from keras_lm.models import TransformerLM

    keras.utils.set_random_seed(5)
    return TransformerLM.from_preset("tiny", vocabulary_size=259, sequence_length=CONTEXT)


@pytest.fixture(scope="module")
def server(model):
    from keras_lm.tokenizers import ByteTokenizer

    with ServerThread(model, ByteTokenizer(), max_batch_size=2, model_name="tiny", api_key=KEY,
                      max_queue=2, steps_per_call=4) as running:
        yield running


class Gate:
    """Holds the decoding thread after its next compiled call until `release()` (at the
    latest when the `with` block ends)."""

    def __init__(self, engine):
        self.engine, self.hook = engine, engine.on_batch
        self.closed, self.reached, self.opened = True, threading.Event(), threading.Event()
        engine.on_batch = self._on_batch

    def _on_batch(self, *args):
        self.hook(*args)
        if self.closed:
            self.reached.set()
            assert self.opened.wait(60), "the test never released the gate"

    def release(self):
        self.closed = False
        self.opened.set()
        self.engine.on_batch = self.hook

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()


def post(server, body, headers=AUTH, **options):
    return httpx.post(server.url + "/v1/completions", json=body, headers=headers, timeout=60,
                      **options)


def metric(server, name):
    page = httpx.get(server.url + "/metrics", headers=AUTH, timeout=10).text
    return float(re.search(rf"^keras_lm_{re.escape(name)} (\S+)$", page, re.MULTILINE).group(1))


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_every_endpoint_but_health_and_the_page_needs_the_key(server):
    for path in ("/v1/models", "/metrics"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            reply = httpx.get(server.url + path, headers=headers)
            assert reply.status_code == 401, (path, headers)
            assert reply.json()["error"]["code"] == "invalid_api_key"
            assert reply.headers["www-authenticate"] == "Bearer"
        assert httpx.get(server.url + path, headers=AUTH).status_code == 200
    assert post(server, {"prompt": "x"}, headers={}).status_code == 401
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    assert "playground" in httpx.get(server.url + "/").text
    answer = post(server, {"prompt": "x", "max_tokens": 2})
    assert answer.status_code == 200 and answer.json()["choices"][0]["finish_reason"]


def test_a_cross_origin_text_plain_post_is_refused(server):
    body = b'{"prompt": "x", "max_tokens": 2}'
    evil = post(server, None, content=body, headers={
        **AUTH, "Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "origin_not_allowed"
    plain = post(server, None, content=body, headers={**AUTH, "Content-Type": "text/plain"})
    assert plain.status_code == 415 and "application/json" in plain.json()["error"]["message"]
    own = post(server, None, content=body, headers={
        **AUTH, "Origin": server.url, "Content-Type": "application/json"})
    assert own.status_code == 200


def inner_app(scope, receive, send):
    async def reply():
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return reply()


def test_the_host_allow_list_refuses_a_rebound_name_unless_a_key_or_listed():
    open_server = TestClient(Guard(inner_app), base_url="http://127.0.0.1:8000")
    assert open_server.get("/health").status_code == 200
    rebound = open_server.get("/health", headers={"Host": "evil.example:8000"})
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "host_not_allowed"
    listed = TestClient(Guard(inner_app, allowed_origins=["https://app.example.com"]),
                        base_url="http://127.0.0.1:8000")
    assert listed.get("/v1/models", headers={"Host": "app.example.com"}).status_code == 200
    page_elsewhere = {"Origin": "https://app.example.com"}  # a page there calls this server
    cors = listed.get("/v1/models", headers=page_elsewhere)
    assert cors.headers["access-control-allow-origin"] == "https://app.example.com"
    assert listed.options("/v1/completions", headers=page_elsewhere).status_code == 204
    other = listed.get("/v1/models", headers={"Origin": "https://other.example"})
    assert other.status_code == 403
    keyed = TestClient(Guard(inner_app, api_key="k"))
    assert keyed.get("/health", headers={"Host": "my-server.lan"}).status_code == 200


BOUNDS = {
    "top_k over int32": ({"top_k": 2**31}, "top_k"),
    "seed over 2**63 - 1": ({"seed": 10**20}, "seed"),
    "negative seed": ({"seed": -1}, "seed"),
    "temperature NaN": (b'"temperature": NaN', None),
    "top_p Infinity": (b'"top_p": Infinity', None),
    "temperature 1e999": (b'"temperature": 1e999', None),
}


def test_out_of_bounds_numbers_are_400_while_a_good_request_completes(server):
    with Gate(server.engine) as gate, concurrent.futures.ThreadPoolExecutor(1) as pool:
        good = pool.submit(post, server, {"prompt": "the lazy", "max_tokens": 36,
                                          "temperature": 1.0, "seed": 3})
        assert gate.reached.wait(30)  # the good request is mid-decode
        for case, (field, param) in BOUNDS.items():
            if isinstance(field, bytes):
                reply = post(server, None, content=b'{"prompt": "x", ' + field + b"}",
                             headers={**AUTH, "Content-Type": "application/json"})
            else:
                reply = post(server, {"prompt": "x", **field})
            assert reply.status_code == 400, (case, reply.text)
            error = reply.json()["error"]
            assert error["type"] == "invalid_request_error", case
            assert param is None or (error["param"] == param and param in error["message"])
        gate.release()
        answer = good.result(timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] > 0
    top_k = post(server, {"prompt": "x", "max_tokens": 3, "top_k": 2**31 - 1})
    assert top_k.status_code == 200  # beyond the vocabulary but within int32: all of it


def test_seeds_5_and_2_to_the_31_plus_5_draw_differently(server):
    def text(seed):
        return post(server, {"prompt": "a", "max_tokens": 24, "temperature": 1.5,
                             "seed": seed}).json()["choices"][0]["text"]

    assert text(5) == text(5)
    assert text(5) != text(2**31 + 5)


def test_a_full_queue_is_503_with_retry_after_and_the_server_recovers(server):
    with Gate(server.engine) as gate, concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, server, {"prompt": "x", "max_tokens": 20, "n": 2,
                                           "temperature": 1.0, "seed": 1})
        gate.reached.wait(30)  # two rows decoding, the thread held
        second = pool.submit(post, server, {"prompt": "y", "max_tokens": 4, "n": 2})
        wait_for(lambda: server.engine.queued() == 2)  # max_queue=2: the queue is full
        health = httpx.get(server.url + "/health").json()
        rejected = post(server, {"prompt": "z", "max_tokens": 2})
        gate.release()
        assert first.result(60).status_code == 200 and second.result(60).status_code == 200
    assert health["status"] == "busy" and health["queued_rows"] == 2
    assert rejected.status_code == 503, rejected.text
    assert rejected.headers["retry-after"] == "1"
    assert rejected.json()["error"]["type"] == "server_error"
    assert metric(server, "rejected_requests_total") >= 1
    assert post(server, {"prompt": "z", "max_tokens": 2}).status_code == 200
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def raw_completion(server, body):
    """A non-streaming POST on a bare socket (the test closes it to hang up)."""
    payload = body.encode()
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nAuthorization: Bearer " + KEY.encode()
                 + b"\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    return sock


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_mid_decode_frees_its_row_within_one_call(server, stream):
    before = metric(server, "cancelled_rows_total")
    body = ('{"prompt": "x", "max_tokens": 40, "temperature": 1.0, "seed": 2, "stream": %s}'
            % str(stream).lower())
    with Gate(server.engine) as gate:
        sock = raw_completion(server, body)
        assert gate.reached.wait(30)  # the row has decoded one call and is held there
        assert server.engine.active() == 1
        sock.close()
        time.sleep(0.5)  # the server notices the hang-up
    wait_for(lambda: metric(server, "cancelled_rows_total") == before + 1)
    wait_for(lambda: server.engine.active() == 0)
    tokens = metric(server, "completion_tokens_total")
    assert post(server, {"prompt": "x", "max_tokens": 2}).status_code == 200
    assert metric(server, "completion_tokens_total") <= tokens + 2  # the hung-up row never counted


def test_continuous_batching_compiles_one_loop_per_bucket_once(server, model):
    assert isinstance(server.engine, ContinuousEngine)
    joins = metric(server, 'decoding_events{kind="joins"}')
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # several lengths, batch sizes 1-2
        replies = list(pool.map(lambda i: post(server, {  # prompts of 3 to 23 tokens: both ways
            "prompt": "ab" * (2 * i + 1), "max_tokens": 3 + 3 * i, "temperature": 0.5 * i}),
            range(6)))
    assert all(reply.status_code == 200 for reply in replies)
    assert metric(server, 'decoding_events{kind="joins"}') == joins + 6  # /metrics counts them
    loops = slot_programs(model)
    assert sorted(loops) == [(1, CONTEXT), (2, CONTEXT)]
    # One loop per bucket; one prefill and one insert (not XLA) for every size.
    programs = [*loops.values(), insert_programs(model)[CONTEXT], prefill_programs(model)[CONTEXT]]
    assert all(program.experimental_get_tracing_count() == 1 for program in programs)


def test_a_request_past_its_deadline_is_504_and_counted(model):
    from keras_lm.tokenizers import ByteTokenizer

    with ServerThread(model, ByteTokenizer(), max_batch_size=1, request_timeout=1e-6,
                      warm_up=False) as running:
        reply = post(running, {"prompt": "x", "max_tokens": 5}, headers={})
        assert reply.status_code == 504, reply.text
        assert reply.json()["error"]["code"] == "timeout"
        assert metric(running, "timed_out_rows_total") == 1
        assert httpx.get(running.url + "/health").json()["status"] == "ok"


def test_a_deadline_frees_a_running_row(server):
    from keras_lm.generation import TextStream
    from keras_lm.serve.engine import Sequence

    engine, events = server.engine, []
    row = engine.encode(["x"], 40, temperature=1.0, seed=0)[0]
    done = threading.Event()

    def on_event(kind, value):
        events.append((kind, value))
        sequence.deadline = 0.0  # past, from the first text on
        if kind in ("done", "error"):
            done.set()

    sequence = Sequence(row, TextStream(engine.tokenizer), on_event, deadline=time.monotonic() + 60)
    engine.submit([sequence])
    assert done.wait(60)
    assert events[-1] == ("done", "timeout")
    assert 0 < sequence.num_tokens < 40


@pytest.mark.parametrize("flag", ["--max_queue=0", "--request_timeout=-1", "--api_key= ",
                                  "--batching=dynamic"])
def test_bad_serving_flags_are_one_line_errors(flag, capsys):
    code, out, err = run_in_process(capsys, "serve", "--model_dir=/nonexistent", flag)
    assert_one_line_usage_error(code, err, "serve", flag.split("=")[0])


def test_a_seeded_request_that_joins_mid_flight_gives_its_text_alone(server, model):
    options = {"max_tokens": 12, "temperature": 0.9, "top_p": 0.95, "seed": 21}
    with Gate(server.engine) as gate, concurrent.futures.ThreadPoolExecutor(2) as pool:
        running = pool.submit(post, server, {"prompt": "a long running one", "max_tokens": 28,
                                             "temperature": 1.0, "seed": 8})
        assert gate.reached.wait(30)  # it is mid-decode: the next request joins it
        joined = pool.submit(post, server, {"prompt": "lazy dog", **options})
        wait_for(lambda: server.engine.queued() == 1)
        gate.release()
        text = joined.result(60).json()["choices"][0]["text"]
        assert running.result(60).status_code == 200
    assert text == post(server, {"prompt": "lazy dog", **options}).json()["choices"][0]["text"]
    from keras_lm.tokenizers import ByteTokenizer

    with ServerThread(model, ByteTokenizer(), max_batch_size=1, batching="static") as static:
        assert type(static.engine).__name__ == "Engine"
        reply = post(static, {"prompt": "lazy dog", **options}, headers={})
        assert reply.json()["choices"][0]["text"] == text  # static batching: the same text


@pytest.mark.slow
def test_keras_lm_serve_warns_without_a_key_off_localhost_and_reads_the_key_from_env(
        model, tmp_path, monkeypatch):
    from keras_lm.tokenizers import ByteTokenizer

    model.save(str(tmp_path / "model.keras"))
    ByteTokenizer().save(str(tmp_path / "tokenizer.json"))
    flags = (f"--model_dir={tmp_path}", "--max_batch_size=1")
    with served(*flags, "--host=0.0.0.0") as server:
        assert httpx.get(server.url + "/v1/models").status_code == 200  # open, as warned
    assert server.returncode == 0 and "warning: serving on 0.0.0.0 without an API key" in server.err
    monkeypatch.setenv("KERAS_LM_API_KEY", KEY)
    with served(*flags, "--host=0.0.0.0") as server:
        assert httpx.get(server.url + "/v1/models").status_code == 401
        assert httpx.get(server.url + "/v1/models", headers=AUTH).status_code == 200
    assert server.returncode == 0 and "warning" not in server.err
