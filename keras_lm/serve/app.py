"""The HTTP API: OpenAI's completions and models endpoints, health, metrics, the playground.

Routes:
- `POST /v1/completions`: OpenAI's schema (`keras_lm.serve.completion_request`);
  `stream=true` answers with server-sent events in OpenAI's chunk format;
- `POST /v1/chat/completions`: OpenAI's chat schema (`keras_lm.serve.chat_request`)
  for a fine-tuned model, the conversation rendered by its prompt template
  (`PromptTemplate.chat_ids`); a plain language model (no template) answers 400;
- `GET /v1/models`, `GET /v1/models/{id}`: the one model served;
- `GET /health`, `GET /metrics` (Prometheus text format), `GET /` (the playground).

Every error is OpenAI's JSON (`{"error": {"message", "type", "param",
"code"}}`): 400 for a bad request, 401/403/415 from `keras_lm.serve.security`,
413 for a body over 1 MB, 503 (with `Retry-After`) when `max_queue` rows
already wait, 504 when a request's deadline passed before any text, 500 with
a request id (the log has the details; no exception text reaches a client).
The server keeps serving, and a bad request never fails the other rows.
Tokenisation runs in a worker thread, off the event loop.

Example:
>>> from keras_lm.models import TransformerLM
>>> from keras_lm.serve.engine import Engine
>>> from keras_lm.tokenizers import ByteTokenizer
>>> engine = Engine(TransformerLM.from_preset("tiny", vocabulary_size=259), ByteTokenizer())
>>> app = create_app(engine, model_name="tiny")
>>> sorted(r.path for r in app.routes if r.path.startswith("/v1"))
['/v1/chat/completions', '/v1/completions', '/v1/models', '/v1/models/{model_id}']
>>> engine.close()
"""

import asyncio
import dataclasses
import importlib.resources
import json
import logging
import math
import time
import uuid

import fastapi
import starlette.exceptions
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from keras_lm.errors import UsageError
from keras_lm.generation import TextStream
from keras_lm.prompt_template import PromptTemplate
from keras_lm.serve.api_error import APIError
from keras_lm.serve.chat_request import parse_chat_request
from keras_lm.serve.completion_request import parse_completion_request
from keras_lm.serve.engine import QueueFull, Sequence
from keras_lm.serve.metrics import CONTENT_TYPE, Metrics
from keras_lm.serve.security import Guard

logger = logging.getLogger("keras_lm")

MAX_BODY_BYTES = 1 << 20  # 1 MB
MAX_ROWS_PER_REQUEST = 128  # prompts x n
# Library argument names -> the request field the user sent.
PARAMS = {"prompts": "prompt", "prompt": "prompt", "max_new_tokens": "max_tokens"}
ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/")


def create_app(engine, *, model_name, template=None, raw=False, metrics=None, api_key=None,
               bind_host="127.0.0.1", allowed_origins=(), request_timeout=None):
    """The FastAPI app serving `engine`'s model as `model_name`.

    `template` is the model's `PromptTemplate` (None: the identity, a model
    trained from scratch). Completion prompts go through it, as `generate`
    does, unless `raw` (as `generate --raw`); chat conversations are rendered
    by it, and without one `/v1/chat/completions` answers 400. `api_key`,
    `bind_host` and `allowed_origins` go to `security.Guard`;
    `request_timeout` (seconds, None: none) is each request's deadline.
    """
    app = fastapi.FastAPI(title="keras-lm serve", docs_url=None, redoc_url=None)
    server = _Handlers(engine, model_name, template or PromptTemplate(), raw,
                       metrics or Metrics(queued=engine.queued, active=engine.active,
                                          decoding_counts=lambda: getattr(engine, "counts", {})),
                       request_timeout)
    app.state.handlers = server
    app.add_middleware(Guard, api_key=api_key, bind_host=bind_host,
                       allowed_origins=tuple(allowed_origins))
    app.add_middleware(_CountRequests, metrics=server.metrics)

    @app.exception_handler(APIError)
    async def api_error(request, error):
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request, error):  # the log has the details; the client an id
        request_id = f"req-{uuid.uuid4().hex[:16]}"
        logger.error("%s %s failed (%s)", request.method, request.url.path, request_id,
                     exc_info=error)
        error = APIError(f"the server failed on this request (request id {request_id}; its "
                         "log has the details)", status=500, type="server_error")
        return JSONResponse(error.body(), status_code=500)

    @app.exception_handler(starlette.exceptions.HTTPException)
    async def http_error(request, error):  # unknown routes and methods, in OpenAI's shape
        error = APIError(f"{request.method} {request.url.path}: {error.detail}",
                         status=error.status_code, type="invalid_request_error")
        return JSONResponse(error.body(), status_code=error.status)

    app.get("/", response_class=HTMLResponse)(server.playground)
    app.get("/health")(server.health)
    app.get("/metrics")(server.metrics_page)
    app.get("/v1/models")(server.models)
    app.get("/v1/models/{model_id}")(server.model)
    app.post("/v1/completions")(server.completions)
    app.post("/v1/chat/completions")(server.chat_completions)
    return app


class _Handlers:
    def __init__(self, engine, model_name, template, raw, metrics, request_timeout=None):
        self.engine = engine
        self.request_timeout = request_timeout
        self.model_name = model_name
        self.template = template
        self.raw = raw
        self.metrics = metrics
        self.created = int(time.time())

    async def playground(self):
        page = importlib.resources.files("keras_lm.serve").joinpath("playground.html")
        return page.read_text(encoding="utf-8")

    async def health(self):
        """"ok", or "busy" while rows wait for a slot (a new request would wait too)."""
        queued = self.engine.queued()
        return {"status": "busy" if queued else "ok", "model": self.model_name,
                "context": self.engine.context, "max_batch_size": self.engine.max_batch_size,
                "queued_rows": queued, "active_rows": self.engine.active(),
                "max_queue": self.engine.max_queue}

    async def metrics_page(self):
        return Response(self.metrics.page(), media_type=CONTENT_TYPE)

    def _model_card(self):
        return {"id": self.model_name, "object": "model", "created": self.created,
                "owned_by": "keras-lm", "context_length": self.engine.context,
                "prompt_template": self.template.template, "raw": self.raw}

    async def models(self):
        return {"object": "list", "data": [self._model_card()]}

    async def model(self, model_id: str):
        self._check_model(model_id)
        return self._model_card()

    def _check_model(self, name):
        if name is not None and name != self.model_name:
            raise APIError(f"model: {name!r} is not served here; this server serves "
                           f"{self.model_name!r}", param="model", status=404,
                           code="model_not_found")

    async def chat_completions(self, request: fastapi.Request):
        arrived = time.monotonic()
        body = await _read_json(request)
        if self.template.is_identity:
            raise APIError(
                f"this model has no chat template: {self.model_name!r} is a plain language "
                "model; use /v1/completions with a prompt, or serve a fine-tuned model "
                "that has a prompt template", code="no_chat_template")
        checked = parse_chat_request(body)
        self._check_model(checked.model)
        if checked.n > MAX_ROWS_PER_REQUEST:
            raise APIError(f"n: {checked.n} completions exceed {MAX_ROWS_PER_REQUEST} per "
                           "request", param="n")
        try:  # roles, contents and their order are the template's to check
            ids = await asyncio.to_thread(self.template.chat_ids, checked.messages,
                                          self.engine.tokenizer)
        except UsageError as error:
            raise APIError(str(error), param="messages") from None
        context = self.engine.context
        room = context - len(ids)  # new tokens that fit after the conversation
        max_tokens = checked.max_tokens
        if room < 1 or (max_tokens is not None and max_tokens > room):
            limit = "" if max_tokens is None else f" + {checked.param}={max_tokens}"
            raise APIError(
                f"messages: the conversation is {len(ids)} tokens as the model reads it "
                f"(<bos> and template included){limit}, over the model's context of {context} "
                f"tokens; shorten it{' or lower ' + checked.param if limit else ''}",
                param="messages", code="context_length_exceeded")
        try:  # an engine may not take every conversation (a SavedModel: one user turn)
            rows = await asyncio.to_thread(
                self.engine.encode, [ids], max_tokens or room, temperature=checked.temperature,
                top_k=checked.top_k, top_p=checked.top_p)
        except UsageError as error:
            raise APIError(str(error), param=error.argument or "messages") from None
        completion = _ChatCompletion(self, checked, rows, arrived)
        return await self._answer(request, completion)

    async def completions(self, request: fastapi.Request):
        arrived = time.monotonic()
        checked = parse_completion_request(await _read_json(request))
        self._check_model(checked.model)
        if checked.logprobs is not None and not self.engine.supports_logprobs:
            raise APIError("logprobs: not available from this server's model (a SavedModel "
                           "gives text only; serve the training run with --model_dir for "
                           "logprobs)", param="logprobs")
        if len(checked.prompts) * checked.n > MAX_ROWS_PER_REQUEST:
            raise APIError(f"n: {len(checked.prompts)} prompts x n={checked.n} completions "
                           f"exceed {MAX_ROWS_PER_REQUEST} per request", param="n")
        # A fine-tuned model's prompt template is applied here, as `generate` does
        # (and echoed with the prompt, as `generate` prints it).
        prompt_texts = checked.prompts if self.raw else self.template.apply(checked.prompts)
        try:  # in a worker thread: a long prompt must not hold up the event loop
            rows = await asyncio.to_thread(
                self.engine.encode, prompt_texts, checked.max_tokens,
                temperature=checked.temperature, top_k=checked.top_k, top_p=checked.top_p)
        except UsageError as error:  # `generate`'s own check, in the request's words
            param = PARAMS.get(error.argument, error.argument)
            message = (error.spelled_as(param) if error.argument else str(error)).replace(
                "max_new_tokens", "max_tokens").replace(", or truncate='left'", "")
            raise APIError(message, param=param) from None
        completion = _Completion(self, checked, rows, arrived, prompt_texts)
        return await self._answer(request, completion)

    async def _answer(self, request, completion):
        try:
            self.engine.submit(completion.sequences)
        except QueueFull as error:
            self.metrics.rejected.inc()
            raise APIError(f"the server is busy: {error}; retry later", status=503,
                           type="server_error", code="server_busy",
                           headers={"Retry-After": "1"}) from None
        if completion.checked.stream:
            return StreamingResponse(completion.stream(), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        return await completion.whole(request)


class _Completion:
    """One completion request in flight: its sequences (prompt i, choice j -> index i * n + j)."""

    id_prefix = "cmpl"

    def __init__(self, handlers, checked, rows, arrived, prompt_texts=None):
        self.handlers = handlers
        self.checked = checked
        self.prompt_texts = prompt_texts
        self.arrived = arrived
        self.first_text = None
        self.id = f"{self.id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        timeout = handlers.request_timeout
        deadline = None if timeout is None else arrived + timeout
        self.timed_out = False
        self.prompt_tokens = sum(len(row.prompt_ids) for row in rows)
        self.events = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.sequences = []
        for row in rows:
            for j in range(checked.n):
                # Choice j of every prompt draws with seed + j: the same seed gives the
                # same texts, and a prompt's text does not depend on the other prompts.
                seed = None if checked.seed is None else (checked.seed + j) % 2**63
                index = len(self.sequences)
                self.sequences.append(Sequence(
                    dataclasses.replace(row, seed=seed),
                    TextStream(handlers.engine.tokenizer, checked.stop),
                    self._forward(loop, index), logprobs=getattr(checked, "logprobs", None),
                    request_id=self.id, deadline=deadline))
        self.texts = [""] * len(self.sequences)
        self.finish_reasons = [None] * len(self.sequences)
        self.logprobs = [None] * len(self.sequences)

    def _forward(self, loop, index):
        metrics = self.handlers.metrics

        def on_event(kind, value):  # from the decoding thread
            if kind == "done" and value in ("cancelled", "timeout"):
                metrics.row_ended(value)  # counted here: nobody may read a cancelled row's end
            try:
                loop.call_soon_threadsafe(self.events.put_nowait, (index, kind, value))
            except RuntimeError:  # the event loop is closed: the server is going down
                pass

        return on_event

    async def _next_event(self):
        index, kind, value = await self.events.get()
        if kind == "error":
            raise APIError(f"{value} (request id {self.id})", status=500, type="server_error")
        if kind == "done" and value == "timeout":  # past the deadline: the text so far
            self.timed_out = True
            value = "length"
        if kind == "text":
            self.first_text = self.first_text or time.monotonic()
            self.texts[index] += value
        elif kind == "logprobs":
            self.logprobs[index] = self._shift_offsets(index, value)
        else:
            self.finish_reasons[index] = value
        return index, kind, value

    def _cancel(self):
        """Stops the rows still running (nobody will read them)."""
        for sequence in self.sequences:
            if not sequence.finished:
                sequence.cancelled = True

    def _record(self):
        now = time.monotonic()
        self.handlers.metrics.finished_request(
            latency=now - self.arrived,
            first_token=None if self.first_text is None else self.first_text - self.arrived,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=sum(s.num_tokens for s in self.sequences))

    def _usage(self):
        completion = sum(s.num_tokens for s in self.sequences)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}

    def _prompt_of(self, index):
        return self.prompt_texts[index // self.checked.n]

    def _object(self, choices):
        return "text_completion"

    def _body(self, choices, **extra):
        return {"id": self.id, "object": self._object(choices), "created": self.created,
                "model": self.handlers.model_name, "choices": choices, **extra}

    def _shift_offsets(self, index, logprobs):
        """With `echo`, the text starts with the prompt: offsets count from there."""
        shift = len(self._prompt_of(index)) if self.checked.echo else 0
        return {**logprobs, "text_offset": [shift + o for o in logprobs["text_offset"]]}

    def _choice(self, index, text, reason):
        """A whole answer's choice."""
        text = (self._prompt_of(index) if self.checked.echo else "") + text
        return {"text": text, "index": index, "logprobs": self.logprobs[index],
                "finish_reason": reason}

    def _chunks(self, index, text, reason=None):
        """The stream's chunks for new text (or the end) of choice `index`.

        A choice's logprobs (all its tokens) come with its last chunk.
        """
        logprobs = self.logprobs[index] if reason is not None else None
        return [self._body([{"text": text, "index": index, "logprobs": logprobs,
                             "finish_reason": reason}])]

    def _first_chunks(self):
        return [chunk for index in range(len(self.sequences))
                for chunk in self._chunks(index, self._prompt_of(index))] if self.checked.echo else []

    async def whole(self, request):
        watcher = asyncio.create_task(_wait_for_disconnect(request))
        try:
            while None in self.finish_reasons:
                event = asyncio.ensure_future(self._next_event())
                await asyncio.wait([event, watcher], return_when=asyncio.FIRST_COMPLETED)
                if not event.done():  # the client left: its rows stop after this call
                    event.cancel()
                    self._cancel()
                    return Response(status_code=499)  # nobody reads it
                event.result()
        finally:
            watcher.cancel()
            self._cancel()
        if self.timed_out and not any(self.texts):
            raise APIError(f"the request took longer than the server's --request_timeout of "
                           f"{self.handlers.request_timeout:g} s before its first text",
                           status=504, type="server_error", code="timeout")
        self._record()
        choices = [self._choice(i, text, reason)
                   for i, (text, reason) in enumerate(zip(self.texts, self.finish_reasons,
                                                           strict=True))]
        return self._body(choices, usage=self._usage())

    async def stream(self):
        def event(data):
            return f"data: {json.dumps(data)}\n\n"

        try:
            for chunk in self._first_chunks():
                yield event(chunk)
            while None in self.finish_reasons:
                try:
                    index, kind, value = await self._next_event()
                except APIError as error:
                    yield event(error.body())
                    break
                if kind == "logprobs":  # sent with the choice's last chunk
                    continue
                chunks = self._chunks(index, value) if kind == "text" else self._chunks(
                    index, "", value)
                for chunk in chunks:
                    yield event(chunk)
            else:
                self._record()
                if self.checked.include_usage:
                    yield event(self._body([], usage=self._usage()))
            yield "data: [DONE]\n\n"
        finally:  # also when the client went away mid-stream: its rows stop, the slot frees
            self._cancel()


class _ChatCompletion(_Completion):
    """One chat request in flight: OpenAI's `chat.completion` and `chat.completion.chunk` shapes."""

    id_prefix = "chatcmpl"

    def _object(self, choices):  # a whole answer's choices carry a message, chunks a delta
        return "chat.completion" if choices and "message" in choices[0] else "chat.completion.chunk"

    def _choice(self, index, text, reason):
        return {"index": index, "message": {"role": "assistant", "content": text},
                "logprobs": None, "finish_reason": reason}

    def _chunks(self, index, text, reason=None):
        delta = {"content": text} if reason is None else {}
        return [self._body([{"index": index, "delta": delta, "logprobs": None,
                             "finish_reason": reason}])]

    def _first_chunks(self):  # as OpenAI: each choice's first chunk carries the role
        return [self._body([{"index": index, "delta": {"role": "assistant", "content": ""},
                             "logprobs": None, "finish_reason": None}])
                for index in range(len(self.sequences))]


async def _wait_for_disconnect(request):
    """Returns when the client closes the connection (the body has been read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the range of a float")
    return value


async def _read_json(request):
    """The request's JSON body, at most `MAX_BODY_BYTES`; NaN and Infinity are refused."""
    too_big = APIError(f"the request body is over the limit of {MAX_BODY_BYTES:,} bytes (1 MB)",
                       status=413, code="request_too_large")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError as error:
        raise APIError(f"the request body is not valid JSON ({error})") from None


class _CountRequests:
    """ASGI middleware: counts answered requests by endpoint and HTTP status."""

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def send_counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            path = scope["path"]
            endpoint = path if path in ENDPOINTS else ("/v1/models/{id}" if path.startswith(
                "/v1/models/") else "other")
            self.metrics.requests.labels(endpoint, str(status)).inc()
