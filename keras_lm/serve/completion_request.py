"""The body of `POST /v1/completions` (OpenAI's schema), checked into decoding options.

Types are strict (`"max_tokens": "10"` is an error, not 10) and unknown
fields are errors, as OpenAI's own API does, so a typo does not pass
silently. `top_k` is an extension (as in vLLM and llama.cpp).

Example:
>>> request = parse_completion_request({"prompt": "def ", "max_tokens": 5, "seed": 1})
>>> request.prompts, request.max_tokens, request.temperature
(['def '], 5, 1.0)
>>> parse_completion_request({"prompt": "x", "max_tokens": "5"})
Traceback (most recent call last):
...
keras_lm.serve.api_error.APIError: max_tokens: Input should be a valid integer (got '5')
"""

from typing import Optional, Union

import pydantic

from keras_lm.serve.api_error import APIError

MAX_STOP_STRINGS = 4  # as OpenAI
MAX_LOGPROBS = 5  # as OpenAI's completions
INT32_MAX = 2**31 - 1  # top_k becomes an int32 tensor
SEED_MAX = 2**63 - 1  # seeds are 0 .. 2**63 - 1 (all their bits count)
DEFAULT_MAX_TOKENS = 16  # as OpenAI's completions
# What a field of several types takes (pydantic reports each type's error apart).
UNIONS = {"prompt": "a string or a list of strings", "stop": "a string, a list of strings or null"}


class StreamOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True, extra="forbid")
    include_usage: bool = False


class SamplingFields(pydantic.BaseModel):
    """The fields completions and chat share; `None` (JSON null) means the default."""

    model_config = pydantic.ConfigDict(strict=True, extra="forbid")

    model: Optional[str] = None
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    n: Optional[int] = None
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    stream: Optional[bool] = None
    stream_options: Optional[StreamOptions] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    logit_bias: Optional[dict] = None
    user: Optional[str] = None


class CompletionRequest(SamplingFields):
    """OpenAI's completion request."""

    prompt: Union[str, list[str]]
    logprobs: Optional[int] = None
    echo: Optional[bool] = None
    best_of: Optional[int] = None
    suffix: Optional[str] = None


class CheckedRequest:
    """A completion request with its defaults filled in and its values checked."""

    def __init__(self, request):
        self.prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
        self.max_tokens = _default(request.max_tokens, DEFAULT_MAX_TOKENS)
        self.echo = bool(request.echo)
        if not self.prompts:
            raise APIError("prompt: a list of prompts must not be empty", param="prompt")
        check_sampling(self, request)
        self.logprobs = request.logprobs
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise APIError(f"logprobs must be in 0..{MAX_LOGPROBS} (top tokens per position), "
                           f"got {self.logprobs}", param="logprobs")
        unsupported = [
            ("best_of", request.best_of not in (None, self.n)),
            ("suffix", request.suffix is not None),
        ]
        for name, asked in unsupported:
            if asked:
                raise APIError(f"{name}: not supported by this server", param=name)


def check_sampling(checked, request):
    """Sets and checks the fields completions and chat share (`max_tokens` set before).

    `checked.max_tokens` None (chat without a limit) means what fits the context.
    """
    checked.model = request.model
    checked.temperature = float(_default(request.temperature, 1.0))
    checked.top_p = float(_default(request.top_p, 1.0))
    checked.top_k = _default(request.top_k, 0)
    checked.n = _default(request.n, 1)
    checked.stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    checked.seed = request.seed
    checked.stream = bool(request.stream)
    checked.include_usage = bool(request.stream_options and request.stream_options.include_usage)
    if checked.max_tokens is not None and checked.max_tokens <= 0:
        raise APIError(f"max_tokens must be > 0, got {checked.max_tokens}", param="max_tokens")
    if checked.temperature < 0:
        raise APIError(f"temperature must be >= 0 (0 is greedy), got {checked.temperature}",
                       param="temperature")
    if not 0 < checked.top_p <= 1:
        raise APIError(f"top_p must be in (0, 1], got {checked.top_p}", param="top_p")
    if not -1 <= checked.top_k <= INT32_MAX:
        raise APIError(f"top_k must be in 0..{INT32_MAX} (0 or -1: off; above the vocabulary: "
                       f"all of it), got {checked.top_k}", param="top_k")
    if checked.seed is not None and not 0 <= checked.seed <= SEED_MAX:
        raise APIError(f"seed must be in 0..{SEED_MAX} (2**63 - 1), got {checked.seed}",
                       param="seed")
    checked.top_k = max(checked.top_k, 0)
    if checked.n < 1:
        raise APIError(f"n must be >= 1, got {checked.n}", param="n")
    if len(checked.stop) > MAX_STOP_STRINGS or not all(checked.stop):
        raise APIError(
            f"stop: at most {MAX_STOP_STRINGS} non-empty strings, got {request.stop!r}",
            param="stop")
    if request.stream_options is not None and not checked.stream:
        raise APIError("stream_options: only with stream=true", param="stream_options")
    unsupported = [
        ("presence_penalty", request.presence_penalty not in (None, 0)),
        ("frequency_penalty", request.frequency_penalty not in (None, 0)),
        ("logit_bias", bool(request.logit_bias)),
    ]
    for name, asked in unsupported:
        if asked:
            raise APIError(f"{name}: not supported by this server", param=name)


def parse_completion_request(body):
    """A `CheckedRequest` from the parsed JSON body; raises `APIError` (400) on a bad one."""
    return CheckedRequest(parse(CompletionRequest, body))


def parse(schema, body):
    """`schema.model_validate(body)`, its first error as an OpenAI-style `APIError`."""
    if not isinstance(body, dict):
        raise APIError(f"the request body must be a JSON object, got {type(body).__name__}")
    try:
        return schema.model_validate(body)
    except pydantic.ValidationError as error:
        errors = error.errors(include_url=False)
        # A missing required field first: it is the one the caller must fix.
        first = next((e for e in errors if e["type"] == "missing"), errors[0])
        param = ".".join(str(part) for part in first["loc"][:1]) or None
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise APIError(f"Unrecognized request argument supplied: {where}",
                           param=param) from None
        if first["type"] == "missing":
            raise APIError(f"{param}: missing (required)", param=param) from None
        if param in UNIONS:
            raise APIError(f"{param} must be {UNIONS[param]}, got {body[param]!r:.200}",
                           param=param) from None
        raise APIError(f"{where}: {first['msg']} (got {first['input']!r:.200})",
                       param=param) from None


def _default(value, default):
    return default if value is None else value
