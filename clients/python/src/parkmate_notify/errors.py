"""What can go wrong when publishing, as exceptions a caller can branch on.

Every exception of this package derives from :class:`ParkmateNotifyError`. The split follows the one
decision a caller has to make: :class:`ApiError` means the request itself is wrong (fix the code or
the configuration; retrying cannot help), :class:`Unavailable` means the server could not be reached
or answered "try later" on every attempt (the notification was *not* confirmed; a later call with
the same idempotency key is safe).
"""

from __future__ import annotations


class ParkmateNotifyError(Exception):
    """Base class of every error raised by ``parkmate_notify``."""


class ConfigurationError(ParkmateNotifyError):
    """A required setting (URL, API key, JWT secret) is missing or malformed."""


class ApiError(ParkmateNotifyError):
    """The server refused the request with an error status that a retry cannot fix.

    ``code`` is the server's stable error code (``invalid_level``, ``unauthorized``, …, see
    ``docs/protocol.md``), ``message`` its explanation. A response that is not the server's JSON
    error shape (a proxy's HTML page, say) gets the code ``http_<status>``.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Unavailable(ParkmateNotifyError):
    """Every attempt failed with a connection error, a timeout or a 502/503/504.

    ``attempts`` says how many requests were made; ``status`` and ``code`` are those of the last
    answer when there was one (``None`` after a connection error, whose exception is the
    ``__cause__``).
    """

    def __init__(
        self, message: str, *, attempts: int, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status = status
        self.code = code
