"""Chat on imported runs: each family's chat format recorded at import (or recognised from a
Hugging Face chat_template), and /v1/chat/completions on an imported Gemma 3-shaped run."""

import json
import os

import httpx
import numpy as np
import pytest
from conftest import served

import keras_lm
from keras_lm.generation import generate
from keras_lm.pretrained.chat_templates import FORMATS, chat_template, hf_chat_template
from keras_lm.prompt_template import PromptTemplate

EXPECTED = {"gemma3": "gemma", "gpt2": "plain", "llama3": "llama3", "hf_llama3": "llama3"}


def read_json(*path):
    with open(os.path.join(*path)) as f:
        return json.load(f)


@pytest.mark.parametrize("name", EXPECTED)
def test_import_records_the_family_chat_format(pretrained_runs, name):
    template, reply_end = FORMATS[EXPECTED[name]]
    config = read_json(pretrained_runs[name], "config.json")
    assert config["prompt_template"] == template
    assert config.get("chat_reply_end") == reply_end
    # The tokenizer carries it too (what an export applies); the run stays a text run.
    assert read_json(pretrained_runs[name], "tokenizer.json")["prompt_template"] == template
    assert keras_lm.Run(pretrained_runs[name]).kind == "text"


def test_a_hugging_face_chat_template_is_recognised_by_its_markers(tmp_path):
    chatml = ("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + "
              "'<|im_end|>\\n'}}{% endfor %}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": chatml}))
    assert hf_chat_template(tmp_path) == chatml
    assert chat_template("llama3", hf_chat_template(tmp_path)) == PromptTemplate(
        *FORMATS["chatml"][:1], reply_end=FORMATS["chatml"][1])
    # An unknown format, a list of named templates, no file: the family's own.
    assert chat_template("gemma3", "{{ messages }}").template == FORMATS["gemma"][0]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": [{"name": "default", "template": "<start_of_turn>{{x}}"}]}))
    assert chat_template("gpt2", hf_chat_template(tmp_path)).reply_end == "<end_of_turn>\n"
    assert hf_chat_template(tmp_path / "missing") is None


@pytest.fixture(scope="module")
def gemma(pretrained_runs):
    """The Gemma 3-shaped run loaded for this module alone: tensorflow-text SentencePiece ops
    of the session's shared tokenizer, used here, broke a later tf.data pipeline of it
    ("SentencepieceOp ... does not exist") in another module's test."""
    return keras_lm.load(pretrained_runs["gemma3"])


def test_gemma_conversation_renders_in_gemma_turns(gemma):
    tokenizer = gemma.tokenizer
    template = chat_template("gemma3")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    ids = template.chat_ids(messages, tokenizer)
    text = ("<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello"
            "<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
    assert ids == [tokenizer.bos_id] + [int(i) for i in tokenizer.encode(text)]
    start, end = (int(tokenizer.encode(t)[0]) for t in ("<start_of_turn>", "<end_of_turn>"))
    assert ids.count(start) == 4 and ids.count(end) == 3  # special tokens, one id each


def test_served_gemma_chat_is_the_greedy_decoding_of_its_turns(pretrained_runs, gemma):
    # `keras-lm serve` in its own process: a server's tensorflow-text SentencePiece graphs
    # in this process share one resource name with the session's tokenizer, and freeing
    # them broke a later tf.data pipeline of it ("SentencepieceOp ... does not exist").
    messages = [{"role": "user", "content": "def the"}]
    with served(f"--model_dir={pretrained_runs['gemma3']}", "--max_batch_size=1") as server:
        reply = httpx.post(server.url + "/v1/chat/completions", timeout=120,
                           json={"messages": messages, "max_tokens": 6, "temperature": 0})
    assert reply.status_code == 200, reply.text
    model = gemma  # the same run, loaded here
    tokenizer = model.tokenizer
    ids = chat_template("gemma3").chat_ids(messages, tokenizer)
    expected = generate(model, tokenizer, [ids], 6, sampler="greedy")[0]
    answer = reply.json()
    assert answer["choices"][0]["message"]["content"] == expected
    assert answer["usage"]["prompt_tokens"] == len(ids)
    # `generate` applies the same turn to a plain prompt: one user turn, no <eos> added.
    assert model.generate("def the", 6) == expected
    np.testing.assert_array_equal(
        tokenizer.encode(chat_template("gemma3").apply("def the")), ids[1:])
