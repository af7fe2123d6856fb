"""The prompt template: how a fine-tuned model expects its prompt, one definition for all.

A template is a Python format string with exactly one `{prompt}` field
(`"{prompt}\\n"` by default for fine-tuned runs; literal braces are written
`{{` and `}}`). A model trained from scratch has no template: the identity.
`keras-lm finetune` trains on `<bos>` + the prompt through the template +
the response + `<eos>`, records the template in the run's `config.json` (key
`prompt_template`) and `tokenizer.json`, and everything that prompts the
model applies the same one: `model.generate` and `keras-lm generate`, the
SavedModel's `serving_default`, the LiteRT bundle's `metadata.json` and the
server's chat endpoint.

A conversation (`chat_ids`) renders as each earlier user turn through the
template followed by the model's reply and `<eos>`, then the last user turn
through the template, all after one `<bos>`; a system message, if any, is
prepended to the first user turn (with a blank line between them). A
template may also say how a finished reply ends in the conversation
(`reply_end`, e.g. Gemma's `"<end_of_turn>\n"`: the family's chat format,
as an imported model was instruction-tuned on); without it a reply ends
with `<eos>`. config.json keeps it as `chat_reply_end`.

Only the standard library is imported: this is the ground floor, used by
generation, export and serving alike.

Example:
>>> template = PromptTemplate("Q: {prompt}\\nA:")
>>> template.apply("2 + 2?")
'Q: 2 + 2?\\nA:'
>>> PromptTemplate.from_run_config({}).apply("def ")  # a model trained from scratch
'def '
>>> PromptTemplate("{prompt} {{json}}").apply("x")
'x {json}'
"""

import string

from keras_lm.errors import UsageError

# The template of a fine-tuned run unless --template says otherwise: the
# response starts on the line after the prompt.
DEFAULT_TEMPLATE = "{prompt}\n"
# The key under which config.json, tokenizer.json and metadata.json keep it.
CONFIG_KEY = "prompt_template"
REPLY_END_KEY = "chat_reply_end"
ROLES = ("system", "user", "assistant")


class PromptTemplate:
    """A prompt format with one `{prompt}` field, or the identity (`template=None`).

    Attributes:
        template: the format string, or None for the identity.
        prefix, suffix: the literal text before and after the prompt (what
            an exported graph concatenates around it).
    """

    def __init__(self, template=None, argument="template", reply_end=None):
        if reply_end is not None and (not isinstance(reply_end, str) or template is None):
            raise UsageError(f"{REPLY_END_KEY} must be a string beside a template, got "
                             f"{reply_end!r}", argument=REPLY_END_KEY)
        self.reply_end = reply_end
        if template is None:
            self.template, self.prefix, self.suffix = None, "", ""
            return
        if not isinstance(template, str):
            raise UsageError(f"{argument} must be a string with one {{prompt}} field, got "
                             f"{template!r}", argument=argument)
        self.prefix, self.suffix = _split(template, argument)
        self.template = template

    @classmethod
    def from_run_config(cls, config):
        """The template a run recorded (`config.json`'s `prompt_template`), else the identity.

        Example:
        >>> PromptTemplate.from_run_config({"prompt_template": "{prompt}\\n"}).apply("hi")
        'hi\\n'
        """
        config = config or {}
        return cls(config.get(CONFIG_KEY), argument=CONFIG_KEY,
                   reply_end=config.get(REPLY_END_KEY))

    @property
    def is_identity(self):
        return self.template is None

    def apply(self, prompt):
        """The prompt as the model was trained to see it (a string, or a list of them)."""
        if isinstance(prompt, (list, tuple)):
            return [self.apply(p) for p in prompt]
        return self.prefix + prompt + self.suffix

    def chat_ids(self, messages, tokenizer, add_bos=True):
        """Token ids of a conversation, ready for the model to write the next reply.

        Args:
            messages: `[{"role": "system"|"user"|"assistant", "content": str}]`
                (OpenAI's chat format): an optional system message first, then
                user and assistant turns alternating, ending with a user turn.
            tokenizer: any keras_lm tokenizer (`encode`, `bos_id`, `eos_id`).
            add_bos: start with `<bos>` (as every training example does).

        Returns:
            A list of ints: `<bos>`, then for each earlier exchange the user
            turn through the template, the reply and `<eos>` (or the reply
            and `reply_end`), then the last user turn through the template.

        Example:
        >>> class Letters:  # a stand-in tokenizer: one id per character
        ...     bos_id, eos_id = 0, 1
        ...     def encode(self, text):
        ...         return [ord(c) for c in text]
        >>> PromptTemplate("{prompt}:").chat_ids(
        ...     [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
        ...      {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}],
        ...     Letters())
        [0, 115, 10, 10, 97, 58, 98, 1, 99, 58]
        """
        turns = _conversation(messages)
        ids = [int(tokenizer.bos_id)] if add_bos else []
        for user, reply in turns:
            ids += _ids(tokenizer, self.apply(user))
            if reply is not None and self.reply_end is not None:
                ids += _ids(tokenizer, reply + self.reply_end)
            elif reply is not None:
                ids += _ids(tokenizer, reply) + [int(tokenizer.eos_id)]
        return ids

    def to_config(self):
        """`{"prompt_template": template}` (and `chat_reply_end` if set) for a config.json
        or metadata.json."""
        config = {CONFIG_KEY: self.template}
        if self.reply_end is not None:
            config[REPLY_END_KEY] = self.reply_end
        return config

    def __eq__(self, other):
        return (isinstance(other, PromptTemplate) and other.template == self.template
                and other.reply_end == self.reply_end)

    def __hash__(self):
        return hash((self.template, self.reply_end))

    def __repr__(self):
        end = "" if self.reply_end is None else f", reply_end={self.reply_end!r}"
        return f"PromptTemplate({self.template!r}{end})"


def _split(template, argument):
    """`(prefix, suffix)` around the one `{prompt}` field, or UsageError."""
    prefix, suffix, fields = [], [], []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:  # an unmatched brace
        raise UsageError(f"{argument}: {template!r} is not a format string ({error}); write "
                         "literal braces as {{ and }}", argument=argument) from None
    for literal, field, spec, conversion in parsed:
        (suffix if fields else prefix).append(literal)
        if field is None:
            continue
        if field != "prompt" or spec or conversion:
            raise UsageError(f"{argument}: {template!r} has the field "
                             f"{{{field}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}}; only {{prompt}} is allowed "
                             "(write literal braces as {{ and }})", argument=argument)
        fields.append(field)
    if len(fields) != 1:
        raise UsageError(f"{argument}: {template!r} must contain exactly one {{prompt}} field, "
                         f"got {len(fields)}", argument=argument)
    return "".join(prefix), "".join(suffix)


def _conversation(messages):
    """`[(user text, reply or None)]`, the system message folded into the first user turn."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise UsageError(f"messages must be a non-empty list of {{role, content}} dicts, got "
                         f"{messages!r}", argument="messages")
    for i, message in enumerate(messages):
        if (not isinstance(message, dict) or message.get("role") not in ROLES
                or not isinstance(message.get("content"), str)):
            raise UsageError(f"messages[{i}] must be {{'role': one of {', '.join(ROLES)}, "
                             f"'content': str}}, got {message!r}", argument="messages")
    system = None
    if messages[0]["role"] == "system":
        system, messages = messages[0]["content"], list(messages[1:])
    roles = [m["role"] for m in messages]
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
    if roles != expected or not roles or roles[-1] != "user":
        raise UsageError("messages must alternate user and assistant turns after an optional "
                         f"system message, ending with a user turn, got roles {roles}",
                         argument="messages")
    texts = [m["content"] for m in messages]
    if system:
        texts[0] = f"{system}\n\n{texts[0]}"
    users, replies = texts[0::2], texts[1::2] + [None]
    return list(zip(users, replies))


def _ids(tokenizer, text):
    ids = tokenizer.encode(text)
    ids = ids.numpy() if hasattr(ids, "numpy") else ids
    return [int(i) for i in ids]
