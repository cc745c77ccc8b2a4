"""The publish client: ``POST /api/notifications`` with the API key, sync and async.

Each call carries one ``Idempotency-Key`` (a random one unless the caller gives its own) and keeps it
across its retries, so a retry after a lost answer makes the server answer the ids it already stored
instead of storing, and sending, the notification twice. Only answers that mean "not done, try
again" are retried: connection errors, timeouts and 502/503/504 (the server's own 503s, and a proxy's
answers while nodes restart). A 4xx is the caller's mistake and raises :class:`ApiError` at once.

The request shaping and the reading of answers are shared by :class:`Client` and
:class:`AsyncClient`; only the loop that sends and sleeps exists twice, once per I/O model.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, get_args

import anyio
import httpx

from .errors import ApiError, ParkmateNotifyError, Unavailable

__all__ = ["LEVELS", "ROLES", "AsyncClient", "Client", "Level", "Role", "RetryPolicy"]

#: The five toast kinds of the original front end.
Level = Literal["success", "error", "warning", "info", "confirm"]
#: The roles a token (and a role notification) can name.
Role = Literal["user", "owner", "admin", "employee"]
LEVELS: tuple[Level, ...] = get_args(Level)
ROLES: tuple[Role, ...] = get_args(Role)

PUBLISH_PATH = "/api/notifications"
#: Answers that mean "not done, try again": the server's 503 (shutting down, overloaded) and a
#: proxy's 502/504 while the node behind it restarts.
RETRY_STATUSES = frozenset({502, 503, 504})

log = logging.getLogger("parkmate_notify")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call retries.

    ``retries`` extra attempts after the first; before attempt ``n`` (1-based) the client waits a
    random time up to ``min(max_backoff, backoff * 2**(n-1))`` seconds ("full jitter", so callers
    that failed together do not retry together), or the server's ``Retry-After`` when that is
    longer, still capped by ``max_backoff``: a Django view should not hang for minutes.
    """

    retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 4.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must not be negative")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 = the first retry)."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        wait = random.uniform(0, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_backoff)


def _user_id(value: int | str) -> int:
    # The original accepted "int or str"; a bool is an int to Python but never a user.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"a user id is an int (or a string of digits), not {value!r}")
    if isinstance(value, str):
        if not value.isdecimal():
            raise ValueError(f"a user id is a non-negative integer, not {value!r}")
        return int(value)
    if value < 0:
        raise ValueError(f"a user id is a non-negative integer, not {value}")
    return value


@dataclass(frozen=True)
class _Request:
    body: dict[str, Any]
    headers: dict[str, str]


def _request(
    recipient: dict[str, Any],
    level: Level,
    message: str,
    event: str | None,
    data: Mapping[str, Any] | None,
    idempotency_key: str | None,
) -> _Request:
    body: dict[str, Any] = {"level": level, "message": message, **recipient}
    if event is not None:
        body["event"] = event
    if data is not None:
        body["data"] = dict(data)
    key = idempotency_key if idempotency_key is not None else uuid.uuid4().hex
    return _Request(body, {"Idempotency-Key": key})


@dataclass(frozen=True)
class _Retry:
    """A retryable answer: why, and what the server said if anything."""

    reason: str
    status: int | None = None
    code: str | None = None
    retry_after: float | None = None


def _error_fields(response: httpx.Response) -> tuple[str, str]:
    """The server's ``{"code", "message"}``, or ``http_<status>`` and the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return body["code"], str(body.get("message", ""))
    return f"http_{response.status_code}", response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    # Seconds only; the HTTP-date form is not worth a parser here.
    return float(value) if value.isdecimal() else None


def _interpret(response: httpx.Response) -> list[int] | _Retry:
    """The stored ids of a 201, a :class:`_Retry` for a retryable answer; raises otherwise."""
    if response.status_code == 201:
        try:
            ids = response.json()["ids"]
        except (ValueError, KeyError, TypeError) as e:
            raise ParkmateNotifyError(f"unexpected answer to a publish: {response.text[:200]!r}") from e
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ParkmateNotifyError(f"unexpected answer to a publish: {response.text[:200]!r}")
        return ids
    code, message = _error_fields(response)
    if response.status_code in RETRY_STATUSES:
        return _Retry(
            f"{response.status_code} {code}: {message}",
            response.status_code,
            code,
            _retry_after(response),
        )
    raise ApiError(response.status_code, code, message)


def _base_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the Parkmate Notify URL must start with http:// or https://, not {url!r}")
    return url.rstrip("/")


def _headers(api_key: str) -> dict[str, str]:
    if not api_key:
        raise ValueError("the API key must not be empty")
    return {"Authorization": f"Bearer {api_key}", "User-Agent": "parkmate-notify-python/0.1"}


def _give_up(last: _Retry, attempts: int, cause: BaseException | None) -> Unavailable:
    error = Unavailable(
        f"Parkmate Notify did not confirm the notification after {attempts} attempt(s): {last.reason}",
        attempts=attempts,
        status=last.status,
        code=last.code,
    )
    error.__cause__ = cause
    return error


class Client:
    """Publishes notifications to one Parkmate Notify server, blocking.

    ``url`` is the server's base URL (``http://127.0.0.1:8000``), ``api_key`` its
    ``PARKMATE_API_KEY``. Safe to share between threads; keep one per process and :meth:`close` it
    (or use it as a context manager) when done.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        # The server gives up on a full queue after 5 s with a 503: wait longer than that, so the
        # answer (and its retry) comes from the server rather than from our own timeout.
        self._http = httpx.Client(base_url=_base_url(url), headers=_headers(api_key), timeout=timeout)
        self._retry = retry or RetryPolicy()

    def send_ws_notification(
        self,
        user_id: int | str,
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify one user; the original ``send_ws_notification(user_id, level, message)``.

        Answers the stored notification's id (in a list, like the other calls).
        """
        return self._publish(
            {"user_id": _user_id(user_id)}, level, message, event, data, idempotency_key
        )

    def to_users(
        self,
        user_ids: Iterable[int | str],
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify several users (1 to 1000, duplicates count once); one id per distinct user."""
        ids = [_user_id(u) for u in user_ids]
        return self._publish({"user_ids": ids}, level, message, event, data, idempotency_key)

    def to_role(
        self,
        role: Role,
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify everyone whose token has ``role`` (one stored notification)."""
        return self._publish({"role": role}, level, message, event, data, idempotency_key)

    def broadcast(
        self,
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify every user (one stored notification)."""
        return self._publish({"broadcast": True}, level, message, event, data, idempotency_key)

    def _publish(
        self,
        recipient: dict[str, Any],
        level: Level,
        message: str,
        event: str | None,
        data: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> list[int]:
        request = _request(recipient, level, message, event, data, idempotency_key)
        attempt = 0
        while True:
            attempt += 1
            cause: httpx.TransportError | None = None
            try:
                response = self._http.post(PUBLISH_PATH, json=request.body, headers=request.headers)
                outcome = _interpret(response)
            except httpx.TransportError as e:
                cause, outcome = e, _Retry(f"{type(e).__name__}: {e}")
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt > self._retry.retries:
                raise _give_up(outcome, attempt, cause)
            wait = self._retry.delay(attempt, outcome.retry_after)
            log.warning("publish attempt %d failed (%s); retrying in %.2f s", attempt, outcome.reason, wait)
            time.sleep(wait)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """:class:`Client` for ``async`` code (async Django views, ASGI apps): the same calls, awaited.

    Bound to the event loop it is first used on; :meth:`aclose` it (or ``async with`` it).
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=_base_url(url), headers=_headers(api_key), timeout=timeout
        )
        self._retry = retry or RetryPolicy()

    async def send_ws_notification(
        self,
        user_id: int | str,
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify one user; see :meth:`Client.send_ws_notification`."""
        return await self._publish(
            {"user_id": _user_id(user_id)}, level, message, event, data, idempotency_key
        )

    async def to_users(
        self,
        user_ids: Iterable[int | str],
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify several users; see :meth:`Client.to_users`."""
        ids = [_user_id(u) for u in user_ids]
        return await self._publish({"user_ids": ids}, level, message, event, data, idempotency_key)

    async def to_role(
        self,
        role: Role,
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify everyone with ``role``; see :meth:`Client.to_role`."""
        return await self._publish({"role": role}, level, message, event, data, idempotency_key)

    async def broadcast(
        self,
        level: Level,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> list[int]:
        """Notify every user; see :meth:`Client.broadcast`."""
        return await self._publish({"broadcast": True}, level, message, event, data, idempotency_key)

    async def _publish(
        self,
        recipient: dict[str, Any],
        level: Level,
        message: str,
        event: str | None,
        data: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> list[int]:
        request = _request(recipient, level, message, event, data, idempotency_key)
        attempt = 0
        while True:
            attempt += 1
            cause: httpx.TransportError | None = None
            try:
                response = await self._http.post(
                    PUBLISH_PATH, json=request.body, headers=request.headers
                )
                outcome = _interpret(response)
            except httpx.TransportError as e:
                cause, outcome = e, _Retry(f"{type(e).__name__}: {e}")
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt > self._retry.retries:
                raise _give_up(outcome, attempt, cause)
            wait = self._retry.delay(attempt, outcome.retry_after)
            log.warning("publish attempt %d failed (%s); retrying in %.2f s", attempt, outcome.reason, wait)
            # anyio's sleep (httpx's own async layer): right under asyncio and trio alike.
            await anyio.sleep(wait)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
