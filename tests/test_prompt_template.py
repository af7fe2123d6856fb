"""The prompt template: formatting, its checks, and conversations as token ids."""

import pytest

from keras_lm.errors import UsageError
from keras_lm.prompt_template import DEFAULT_TEMPLATE, PromptTemplate
from keras_lm.tokenizers import ByteTokenizer


def test_apply_puts_the_prompt_in_its_one_field():
    template = PromptTemplate("### Q: {prompt}\n### A:")
    assert template.apply("why?") == "### Q: why?\n### A:"
    assert template.apply(["a", "b"]) == ["### Q: a\n### A:", "### Q: b\n### A:"]
    assert (template.prefix, template.suffix) == ("### Q: ", "\n### A:")
    assert PromptTemplate(DEFAULT_TEMPLATE).apply("x") == "x\n"


def test_no_template_is_the_identity():
    for template in (PromptTemplate(), PromptTemplate.from_run_config({}),
                     PromptTemplate.from_run_config({"prompt_template": None})):
        assert template.is_identity and template.apply("def f") == "def f"


def test_braces_are_literal_when_doubled_and_braces_in_the_prompt_stay():
    assert PromptTemplate("{{{prompt}}}").apply("{x}") == "{{x}}"


@pytest.mark.parametrize("text, message", [
    ("no field", "exactly one {prompt} field, got 0"),
    ("{prompt} and {prompt}", "exactly one {prompt} field, got 2"),
    ("{question}", "only {prompt} is allowed"),
    ("{prompt!r}", "only {prompt} is allowed"),
    ("{prompt:>9}", "only {prompt} is allowed"),
    ("{prompt", "is not a format string"),
])
def test_a_template_without_exactly_one_prompt_field_is_refused(text, message):
    with pytest.raises(UsageError, match="^template: ") as error:
        PromptTemplate(text)
    assert message in str(error.value) and error.value.argument == "template"


def test_chat_renders_earlier_turns_with_their_replies_and_eos():
    tokenizer = ByteTokenizer()
    template = PromptTemplate("Q: {prompt}\nA: ")
    ids = template.chat_ids([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ], tokenizer)
    expected = ([257] + list(b"Q: Be brief.\n\nhi\nA: ") + list(b"hello") + [258]
                + list(b"Q: bye\nA: "))
    assert ids == expected
    one_turn = template.chat_ids([{"role": "user", "content": "x"}], tokenizer, add_bos=False)
    assert one_turn == list(b"Q: x\nA: ")


@pytest.mark.parametrize("messages", [
    [],
    [{"role": "assistant", "content": "a"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
     {"role": "user", "content": "c"}],
    [{"role": "robot", "content": "a"}],
    [{"role": "user", "content": 3}],
])
def test_malformed_conversations_are_refused(messages):
    with pytest.raises(UsageError, match="^messages"):
        PromptTemplate("{prompt}").chat_ids(messages, ByteTokenizer())
