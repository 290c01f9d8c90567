"""The error hierarchy.

    LinesyncError
    ├── ConfigError            a setting is missing or malformed (names the variable)
    ├── StoreUnavailable       Redis did not answer; the caller should answer 503 / retry
    ├── InvalidWebhook         a signed body that is not the LINE envelope
    └── LineApiError           a LINE API call did not succeed
        ├── LineRetryable      429/5xx/network
        ├── LineForbidden      403: the account may not use this API (not retried)
        └── LineExpiredToken   400 "Invalid start param": the paging token expired

Third-party exceptions are converted where they cross into our code, with
``raise X(...) from e``.

A Braze answer is not an exception: workers/braze.py's ``classify`` turns each
into an outcome value (delivered, bad request, retryable, rate-limited, auth
failure) that workers/sending.py and the delivery loops act on.
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
