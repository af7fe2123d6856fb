"""Who may talk to the server: an API key, a Host/Origin allow-list, JSON-only bodies.

`Guard` is ASGI middleware in front of every route:

- **Host** (without an API key): the `Host` header must name an allowed
  host (the localhost names, the address the server is bound to, and the
  hosts of `allowed_origins`). A web page that rebinds its own DNS name to
  127.0.0.1 sends its own name here, so it cannot read the replies. With a
  key, such a page has no key, and any Host passes.
- **Origin**: a request from a browser page (an `Origin` header) is refused
  unless that origin is the server's own or in `allowed_origins`; an allowed
  one gets CORS headers (and its preflight an answer), so a page there can
  call the API.
- **API key**: with `api_key` set, every route except `/health` and the
  playground page needs `Authorization: Bearer <key>` (compared in constant
  time); otherwise 401, as OpenAI answers a wrong key.
- **JSON only**: a POST must say `Content-Type: application/json`: a page
  elsewhere can POST `text/plain` without a preflight, never JSON.

Each refusal is OpenAI's error JSON. `"*"` in `allowed_origins` allows every
host and origin (behind a proxy that checks them itself).

Example:
>>> sorted(allowed_hosts("0.0.0.0", ["https://app.example.com"]))
['127.0.0.1', '::1', 'app.example.com', 'localhost']
"""

import hmac
import json
import urllib.parse

from keras_lm.serve.api_error import APIError

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
OPEN_PATHS = ("/health", "/")  # without a key: a load balancer's probe, the playground page
ANY_ADDRESS = ("0.0.0.0", "::", "")


def is_local(host):
    """Whether binding `host` keeps the server on this machine."""
    return host in LOCAL_HOSTS or host.startswith("127.")


def _host_of(entry):
    """`https://a.example:8443` -> `a.example`; a bare host name stays as it is."""
    parsed = urllib.parse.urlsplit(entry if "//" in entry else f"//{entry}")
    return (parsed.hostname or entry).lower()


def allowed_hosts(bind_host, allowed_origins):
    """The host names a request's `Host` header may carry."""
    hosts = set(LOCAL_HOSTS) | {_host_of(entry) for entry in allowed_origins}
    if bind_host not in ANY_ADDRESS:
        hosts.add(bind_host.lower())
    return hosts


def _refusal(error, extra_headers=()):
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *extra_headers]
    return error.status, headers, body


class Guard:
    """ASGI middleware: the checks above, before the app sees a request."""

    def __init__(self, app, *, api_key=None, bind_host="127.0.0.1", allowed_origins=()):
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.any = "*" in allowed_origins
        self.hosts = allowed_hosts(bind_host, [o for o in allowed_origins if o != "*"])
        self.origins = {o.rstrip("/").lower() for o in allowed_origins if "//" in o}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        refusal = self._check(scope, headers, origin)
        cors = self._cors(origin, headers.get("host", ""))
        if refusal is None and scope["method"] == "OPTIONS" and cors:  # a preflight
            refusal = 204, cors, b""
        if refusal is not None:
            status, response_headers, body = refusal
            await send({"type": "http.response.start", "status": status,
                        "headers": response_headers + (cors if status == 401 else [])})
            return await send({"type": "http.response.body", "body": body})

        async def send_with_cors(message):
            if message["type"] == "http.response.start" and cors:
                message = {**message, "headers": list(message.get("headers", [])) + cors}
            await send(message)

        return await self.app(scope, receive, send_with_cors)

    def _check(self, scope, headers, origin):
        """`(status, headers, body)` of the refusal, or None: the request may pass."""
        host = _host_of(headers.get("host", ""))
        # With a key, a rebound DNS name gains nothing (it has no key): any Host may pass.
        if self.key is None and not self.any and host not in self.hosts:
            return _refusal(APIError(
                f"Host: {host!r} is not a name of this server (allowed: "
                f"{', '.join(sorted(self.hosts))}; add yours with --allowed_origins)",
                status=403, type="invalid_request_error", code="host_not_allowed"))
        if origin is not None and not self._origin_ok(origin, headers.get("host", "")):
            return _refusal(APIError(
                f"Origin: {origin!r} may not call this server (add it with --allowed_origins)",
                status=403, type="invalid_request_error", code="origin_not_allowed"))
        if scope["method"] == "OPTIONS":
            return None
        if self.key is not None and scope["path"] not in OPEN_PATHS:
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if not (scheme.lower() == "bearer"
                    and hmac.compare_digest(token.strip().encode(), self.key)):
                return _refusal(APIError(
                    "Incorrect API key provided: send `Authorization: Bearer <key>` with the "
                    "key the server was started with (--api_key or KERAS_LM_API_KEY)",
                    status=401, type="invalid_request_error", code="invalid_api_key"),
                    [(b"www-authenticate", b"Bearer")])
        if scope["method"] == "POST":
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return _refusal(APIError(
                    f"Content-Type: the body must be application/json, got {kind or 'none'!r}",
                    status=415, type="invalid_request_error", code="unsupported_media_type"))
        return None

    def _origin_ok(self, origin, host_header):
        origin = origin.rstrip("/").lower()
        same = urllib.parse.urlsplit(origin).netloc == host_header.lower()
        return self.any or same or origin in self.origins

    def _cors(self, origin, host_header):
        """CORS headers for an allowed cross-origin caller (none for the server's own pages)."""
        if origin is None or urllib.parse.urlsplit(origin).netloc == host_header.lower():
            return []
        if not self._origin_ok(origin, host_header):
            return []
        return [(b"access-control-allow-origin", origin.encode("latin-1")),
                (b"vary", b"Origin"),
                (b"access-control-allow-headers", b"authorization, content-type"),
                (b"access-control-allow-methods", b"GET, POST, OPTIONS")]
