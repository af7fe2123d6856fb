"""OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with an HTTP status.

Example:
>>> error = APIError("max_tokens must be > 0, got 0", param="max_tokens")
>>> error.status, error.body()["error"]["type"]
(400, 'invalid_request_error')
"""


class APIError(Exception):
    """A request the server answers with an error (400 unless `status` says otherwise)."""

    def __init__(self, message, *, param=None, status=400, type="invalid_request_error", code=None,
                 headers=None):
        super().__init__(message)
        self.headers = headers or {}
        self.message = message
        self.param = param
        self.status = status
        self.type = type
        self.code = code

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}
