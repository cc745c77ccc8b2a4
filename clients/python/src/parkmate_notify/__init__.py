"""Parkmate Notify for Python: the original ``send_ws_notification(user_id, level, message)``, sent
over HTTP to a Parkmate Notify server instead of a Django Channels layer.

Two ways to configure it:

- an explicit :class:`Client` (or :class:`AsyncClient`) ``(url, api_key)``;
- the module-level functions below, which read ``PARKMATE_NOTIFY_URL`` and
  ``PARKMATE_NOTIFY_API_KEY`` from Django's settings inside a configured Django project, else from
  the environment.

Every call raises :class:`ApiError` (with the server's ``code``) when the server refuses it and
:class:`Unavailable` when no attempt got through; see :mod:`parkmate_notify.errors`. Django helpers
(``notify_on_commit``, a socket-token view) live in :mod:`parkmate_notify.django`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from . import _config
from ._client import LEVELS, ROLES, AsyncClient, Client, Level, RetryPolicy, Role
from .errors import ApiError, ConfigurationError, ParkmateNotifyError, Unavailable
from .tokens import mint_token

__all__ = [
    "LEVELS",
    "ROLES",
    "ApiError",
    "AsyncClient",
    "Client",
    "ConfigurationError",
    "Level",
    "ParkmateNotifyError",
    "RetryPolicy",
    "Role",
    "Unavailable",
    "abroadcast",
    "asend_ws_notification",
    "ato_role",
    "ato_users",
    "broadcast",
    "mint_token",
    "send_ws_notification",
    "to_role",
    "to_users",
]

_lock = threading.Lock()
# One pooled client per process for the module-level functions, rebuilt if the settings change.
_shared: tuple[tuple[str, str], Client] | None = None


def _settings() -> tuple[str, str]:
    return _config.require(_config.URL), _config.require(_config.API_KEY)


def _client() -> Client:
    global _shared
    settings = _settings()
    with _lock:
        if _shared is None or _shared[0] != settings:
            if _shared is not None:
                _shared[1].close()
            _shared = (settings, Client(*settings))
        return _shared[1]


def send_ws_notification(
    user_id: int | str,
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """Notify one user: the original's call, unchanged. Answers the stored id, in a list.

    ``level`` is one of ``success``, ``error``, ``warning``, ``info``, ``confirm``; ``event`` a
    machine-readable kind (``a-z0-9_``, default ``custom``) and ``data`` a JSON object for clients
    that want more than the toast. Give ``idempotency_key`` (e.g. ``f"booking-{b.id}-renewed"``)
    when the *caller* may run twice for one happening; retries inside this call are covered anyway.
    """
    return _client().send_ws_notification(
        user_id, level, message, event=event, data=data, idempotency_key=idempotency_key
    )


def to_users(
    user_ids: Iterable[int | str],
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """Notify several users at once; one id per distinct user."""
    return _client().to_users(
        user_ids, level, message, event=event, data=data, idempotency_key=idempotency_key
    )


def to_role(
    role: Role,
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """Notify everyone with ``role`` (``user``, ``owner``, ``admin``, ``employee``)."""
    return _client().to_role(
        role, level, message, event=event, data=data, idempotency_key=idempotency_key
    )


def broadcast(
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """Notify every user."""
    return _client().broadcast(
        level, message, event=event, data=data, idempotency_key=idempotency_key
    )


# The async twins open a client per call: an httpx.AsyncClient belongs to one event loop, and a
# module-level one would break the second time asyncio.run() (or a new ASGI worker loop) calls it.
# Code that publishes a lot from async code keeps its own AsyncClient instead.


async def asend_ws_notification(
    user_id: int | str,
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """:func:`send_ws_notification` for async code."""
    async with AsyncClient(*_settings()) as client:
        return await client.send_ws_notification(
            user_id, level, message, event=event, data=data, idempotency_key=idempotency_key
        )


async def ato_users(
    user_ids: Iterable[int | str],
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """:func:`to_users` for async code."""
    async with AsyncClient(*_settings()) as client:
        return await client.to_users(
            user_ids, level, message, event=event, data=data, idempotency_key=idempotency_key
        )


async def ato_role(
    role: Role,
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """:func:`to_role` for async code."""
    async with AsyncClient(*_settings()) as client:
        return await client.to_role(
            role, level, message, event=event, data=data, idempotency_key=idempotency_key
        )


async def abroadcast(
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> list[int]:
    """:func:`broadcast` for async code."""
    async with AsyncClient(*_settings()) as client:
        return await client.broadcast(
            level, message, event=event, data=data, idempotency_key=idempotency_key
        )
