"""The chat format of each keras-hub family, as a keras_lm `PromptTemplate`.

keras-hub presets carry no chat template, so an imported run gets its
family's format (what the family's instruction-tuned models were trained
on): Gemma's turns, Llama 3's header tokens, Qwen's ChatML, Llama 2's
`[INST]`; GPT-2 has none of its own and gets keras_lm's plain
`"{prompt}\\n"`. A Hugging Face checkpoint's `tokenizer_config.json` may
hold a `chat_template`, a Jinja program; keras_lm does not run Jinja (no
such dependency), so it recognises which of these formats the program
writes by its markers, and falls back to the family's when it is none of
them. The run's `config.json` records the result (`prompt_template` and
`chat_reply_end`), which `generate`, `serve` and `finetune` then apply.

Example:
>>> chat_template("gemma3").apply("Hi")
'<start_of_turn>user\\nHi<end_of_turn>\\n<start_of_turn>model\\n'
>>> chat_template("gpt2", hf_chat_template="{{'<|im_start|>' + m['role']}}").reply_end
'<|im_end|>\\n'
"""

import json
import os

from keras_lm.prompt_template import DEFAULT_TEMPLATE, PromptTemplate

# name -> (template with one {prompt} field, what ends a finished reply; None: <eos>)
FORMATS = {
    "gemma": ("<start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n",
              "<end_of_turn>\n"),
    "llama3": ("<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
    "chatml": ("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>\n"),
    "llama2": ("[INST] {prompt} [/INST]", None),
    "plain": (DEFAULT_TEMPLATE, None),
}
FAMILY_FORMATS = {"gemma3": "gemma", "llama3": "llama3", "qwen3": "chatml", "llama": "llama2",
                  "gpt2": "plain"}
# A marker in a Jinja chat_template -> the format it writes (first match wins).
MARKERS = (("<start_of_turn>", "gemma"), ("<|start_header_id|>", "llama3"),
           ("<|im_start|>", "chatml"), ("[INST]", "llama2"))


def chat_template(architecture, hf_chat_template=None):
    """The `PromptTemplate` of `architecture` (see `FAMILY_FORMATS`), or of the format a
    Hugging Face `hf_chat_template` (Jinja source) writes, when recognised."""
    name = format_of(hf_chat_template) or FAMILY_FORMATS.get(architecture, "plain")
    template, reply_end = FORMATS[name]
    return PromptTemplate(template, reply_end=reply_end)


def format_of(hf_chat_template):
    """The name of the format a Jinja `chat_template` writes, or None."""
    if not isinstance(hf_chat_template, str):
        return None
    for marker, name in MARKERS:
        if marker in hf_chat_template:
            return name
    return None


def hf_chat_template(directory):
    """`chat_template` of a Hugging Face checkpoint directory's `tokenizer_config.json`,
    or None (no such file or key: a keras-hub preset, a handle)."""
    path = os.path.join(os.fspath(directory), "tokenizer_config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            template = json.load(f).get("chat_template")
    except (OSError, ValueError, AttributeError):
        return None
    if isinstance(template, list):  # several named templates: the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None
