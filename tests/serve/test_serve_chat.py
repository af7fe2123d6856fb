"""keras-lm serve on a fine-tuned run: the prompt template in completions (as `generate`) and
`/v1/chat/completions` (OpenAI's chat schema) driven by the official `openai` client."""

import json
import os

import httpx
import numpy as np
import openai
import pytest

from conftest import CONTEXT, TEMPLATE, make_base, run_captured, run_in_process
from keras_lm.generation import generate
from keras_lm.prompt_template import PromptTemplate
from keras_lm.serve import ServerThread

# A real fine-tuning, fast: no XLA (compiling costs more than 2 steps), no TensorBoard views.
QUICK = ["--steps=2", "--eval_interval=2", "--batch_size=4", "--val_steps=1", "--verbose=0",
         "--nojit_compile", "--nosamples", "--noattention_maps", "--noembedding_projector",
         "--nohparams"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with a prompt template, recorded in config.json as `keras-lm finetune`
    does (untrained weights: the serving path is what is tested; a real fine-tuning costs
    ~20 s here, so it is `test_a_real_finetuned_run_serves_chat_and_templated_completions`)."""
    return make_base(tmp_path_factory.mktemp("serve_chat") / "tuned",
                     {"prompt_template": TEMPLATE, "finetune_kind": "pairs"})


@pytest.fixture(scope="module")
def server(run_dir):
    import keras_lm

    model = keras_lm.load(run_dir)
    assert model.run_config["prompt_template"] == TEMPLATE
    with ServerThread(model, model.tokenizer, max_batch_size=1, model_name="tuned",
                      warm_up=False) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def chat(server, **body):
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)


CONVERSATION = [{"role": "system", "content": "add"}, {"role": "user", "content": "1+2"},
                {"role": "assistant", "content": "3"}, {"role": "user", "content": "4+5"}]


def test_completions_apply_the_template_as_generate_does(server, client):
    # A prompt as long as the conversation below (one prefill size): one program to compile.
    prompt = "12+30 and 3+4"
    answer = client.completions.create(model="tuned", prompt=prompt, max_tokens=8,
                                       temperature=0, echo=True)
    expected = server.engine.model.generate(prompt, 8, sampler="greedy")  # template applied
    assert answer.choices[0].text == f"Q: {prompt}\nA: " + expected  # echo: as the model reads it
    assert answer.usage.prompt_tokens == 1 + len(f"Q: {prompt}\nA: ")


def test_chat_answer_is_the_greedy_decoding_of_the_rendered_conversation(server, client):
    answer = client.chat.completions.create(model="tuned", messages=CONVERSATION,
                                            max_tokens=10, temperature=0)
    model, tokenizer = server.engine.model, server.engine.tokenizer
    ids = PromptTemplate(TEMPLATE).chat_ids(CONVERSATION, tokenizer)
    # The system message goes before the first user turn; earlier replies end with <eos>.
    assert tokenizer.decode_text(np.array(ids[1:], np.int32)).startswith("Q: add\n\n1+2\nA: 3")
    expected = generate(model, tokenizer, [ids], 10, sampler="greedy")[0]
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    choice = answer.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected
    assert choice.finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens == len(ids)
    assert 0 < answer.usage.completion_tokens <= 10


def test_streamed_chat_equals_the_whole_answer(server, client):
    options = dict(model="tuned", messages=[{"role": "user", "content": "12+30"}],
                   max_completion_tokens=20, temperature=0)
    whole = client.chat.completions.create(**options)
    chunks = list(client.chat.completions.create(**options, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    # Without a limit the reply may fill the context: usage stays inside it.
    free = client.chat.completions.create(model="tuned", messages=options["messages"],
                                          temperature=0.8, seed=1, n=2)
    assert [c.index for c in free.choices] == [0, 1]
    assert free.usage.prompt_tokens + free.usage.completion_tokens / 2 <= CONTEXT


BAD_CHATS = {
    "no messages": ({"messages": []}, "messages"),
    "messages missing": ({"max_tokens": 3}, "messages"),
    "messages not a list": ({"messages": "hi"}, "messages"),
    "bad role": ({"messages": [{"role": "robot", "content": "hi"}]}, "messages"),
    "last message not from the user": (
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        "messages"),
    "non-string content": ({"messages": [{"role": "user", "content": [{"type": "text"}]}]},
                           "messages"),
    "does not fit the context": ({"messages": [{"role": "user", "content": "x" * CONTEXT}]},
                                 "messages"),
    "fits without room for max_tokens": (
        {"messages": [{"role": "user", "content": "x" * 40}], "max_tokens": 30}, "messages"),
    "max_tokens 0": ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
                     "max_tokens"),
    "temperature below 0": ({"messages": [{"role": "user", "content": "x"}],
                             "temperature": -1}, "temperature"),
    "unknown field": ({"messages": [{"role": "user", "content": "x"}], "tools": []}, "tools"),
}


@pytest.mark.parametrize("case", BAD_CHATS)
def test_bad_chat_requests_get_an_openai_error(server, case):
    body, param = BAD_CHATS[case]
    reply = chat(server, **body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param in error["message"]


def test_the_server_keeps_serving_after_bad_chats(server, client):
    with pytest.raises(openai.BadRequestError, match="alternate user and assistant"):
        client.chat.completions.create(model="tuned", messages=[
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    answer = client.chat.completions.create(model="tuned", max_tokens=2,
                                            messages=[{"role": "user", "content": "1+1"}])
    assert answer.choices[0].finish_reason in ("stop", "length")
    card = client.models.retrieve("tuned")
    assert card.prompt_template == TEMPLATE


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """A real `keras-lm finetune` run (in this process) and a server on it."""
    import keras_lm

    root = tmp_path_factory.mktemp("serve_finetuned")
    base = make_base(root / "base")
    rng = np.random.default_rng(0)
    with open(root / "pairs.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"prompt": f"{a}+{b}", "response": str(a + b)}) + "\n"
                     for a, b in rng.integers(0, 50, (20, 2)))
    tuned = root / "tuned"
    result = run_captured("finetune", f"--model_dir={base}", f"--data={root / 'pairs.jsonl'}",
                          f"--output_dir={tuned}", f"--template={TEMPLATE}", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    model = keras_lm.load(tuned)
    # Started here, not inside a test: uvicorn's log handlers would hold capsys's stream.
    with ServerThread(model, model.tokenizer, max_batch_size=2, model_name="tuned") as running:
        yield tuned, running


@pytest.mark.slow
def test_a_real_finetuned_run_serves_chat_and_templated_completions(finetuned, capsys):
    """`keras-lm finetune` -> serve: chat works; completions equal `keras-lm generate`."""
    tuned, server = finetuned
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    answer = client.completions.create(model="tuned", prompt="3+4", max_tokens=8, temperature=0)
    reply = client.chat.completions.create(model="tuned", max_tokens=8, temperature=0,
                                           messages=[{"role": "user", "content": "3+4"}])
    code, out, err = run_in_process(capsys, "generate", f"--model_dir={tuned}",
                                    "--prompt=3+4", "--sampler=greedy", "--max_new_tokens=8")
    assert code == 0, err
    assert out == "Q: 3+4\nA: " + answer.choices[0].text + "\n"  # generate echoes the template
    # One user turn renders as <bos> + the prompt through the template: the same text.
    assert reply.choices[0].message.content == answer.choices[0].text
