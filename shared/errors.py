"""The error hierarchy.

    LinesyncError
    ├── ConfigError            a setting is missing or malformed (names the variable)
    ├── StoreUnavailable       Redis did not answer; the caller should answer 503 / retry
    ├── InvalidWebhook         a signed body that is not the LINE envelope
    ├── BrazeError             a Braze call did not succeed
    │   ├── BrazeRetryable     5xx, timeout, connection error: try again later
    │   ├── BrazeRateLimited   429 or X-RateLimit-Remaining: 0 (carries reset time)
    │   ├── BrazeAuthError     401/403/404: configuration problem, pause everything
    │   └── BrazeBadRequest    400 for the whole request
    └── LineApiError           a LINE API call did not succeed
        ├── LineRetryable      429/5xx/network
        ├── LineForbidden      403: the account may not use this API (not retried)
        └── LineExpiredToken   400 "Invalid start param": the paging token expired

Third-party exceptions are converted where they cross into our code, with
``raise X(...) from e``.
"""

from __future__ import annotations


class LinesyncError(Exception):
    """Base class of every error linesync raises on purpose."""


class ConfigError(LinesyncError):
    """A setting is missing or malformed. The message names the variable, never its value."""

    def __init__(self, variable: str, problem: str):
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class StoreUnavailable(LinesyncError):
    """Redis could not be reached or refused the write."""


class InvalidWebhook(LinesyncError):
    """A correctly signed body that is not LINE's webhook envelope."""


class BrazeError(LinesyncError):
    def __init__(self, message: str, *, status: int | None = None, body: str = ""):
        self.status = status
        self.body = body[:500]
        super().__init__(message)


class BrazeRetryable(BrazeError):
    """5xx, timeouts, connection errors: the request may be retried."""


class BrazeRateLimited(BrazeError):
    def __init__(self, message: str, *, reset_at: float, status: int | None = 429, body: str = ""):
        self.reset_at = reset_at
        super().__init__(message, status=status, body=body)


class BrazeAuthError(BrazeError):
    """401/403/404: the key, endpoint or permissions are wrong. Nothing is dropped."""


class BrazeBadRequest(BrazeError):
    """400 for the whole request: some item in it is invalid."""


class LineApiError(LinesyncError):
    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        self.status = status
        self.request_id = request_id
        super().__init__(message)


class LineRetryable(LineApiError):
    pass


class LineForbidden(LineApiError):
    pass


class LineExpiredToken(LineApiError):
    pass
