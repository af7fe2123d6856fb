"""The body of `POST /v1/chat/completions` (OpenAI's chat schema), checked into decoding options.

The same strict types and sampling checks as completions
(`keras_lm.serve.completion_request`). The messages themselves (roles,
string contents, their order) are checked when the template renders them
(`PromptTemplate.chat_ids`). `max_completion_tokens` is OpenAI's newer name
for `max_tokens`; without either, the reply may fill the rest of the context.

Example:
>>> request = parse_chat_request({"messages": [{"role": "user", "content": "hi"}],
...                               "max_completion_tokens": 5, "temperature": 0})
>>> request.messages, request.max_tokens, request.temperature
([{'role': 'user', 'content': 'hi'}], 5, 0.0)
>>> parse_chat_request({"messages": "hi"})
Traceback (most recent call last):
...
keras_lm.serve.api_error.APIError: messages must be a list of {role, content} objects, got 'hi'
"""

from typing import Optional

from keras_lm.serve.api_error import APIError
from keras_lm.serve.completion_request import SamplingFields, check_sampling, parse


class ChatRequest(SamplingFields):
    """OpenAI's chat completion request."""

    messages: list[dict]
    max_completion_tokens: Optional[int] = None
    logprobs: Optional[bool] = None


class CheckedChatRequest:
    """A chat request with its defaults filled in and its sampling values checked."""

    def __init__(self, request):
        self.messages = request.messages
        if (request.max_tokens is not None and request.max_completion_tokens is not None
                and request.max_tokens != request.max_completion_tokens):
            raise APIError(f"max_completion_tokens: {request.max_completion_tokens} and "
                           f"max_tokens: {request.max_tokens} disagree; give one",
                           param="max_completion_tokens")
        limit = request.max_completion_tokens
        self.max_tokens = request.max_tokens if limit is None else limit
        self.param = "max_tokens" if limit is None else "max_completion_tokens"
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise APIError(f"{self.param} must be > 0, got {self.max_tokens}", param=self.param)
        check_sampling(self, request)
        if request.logprobs:
            raise APIError("logprobs: not supported by this server", param="logprobs")


def parse_chat_request(body):
    """A `CheckedChatRequest` from the parsed JSON body; raises `APIError` (400) on a bad one."""
    if isinstance(body, dict) and "messages" in body and not isinstance(body["messages"], list):
        raise APIError("messages must be a list of {role, content} objects, got "
                       f"{body['messages']!r:.200}", param="messages")
    return CheckedChatRequest(parse(ChatRequest, body))
