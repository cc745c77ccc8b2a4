"""Django integration: settings, notifications sent only when the view's transaction commits, and a
view that hands the signed-in user a socket token.

Settings (``settings.py``, or the environment of the same names):

- ``PARKMATE_NOTIFY_URL`` — the server's base URL, e.g. ``http://127.0.0.1:8001``;
- ``PARKMATE_NOTIFY_API_KEY`` — the server's ``PARKMATE_API_KEY``;
- ``PARKMATE_JWT_SECRET`` — the server's JWT secret, for the socket-token views only.

Add ``"parkmate_notify.django"`` to ``INSTALLED_APPS`` to have ``manage.py check`` (and so
``runserver`` and deploy checks) report a missing or malformed setting at start-up rather than at
the first notification.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.views import View

from .. import send_ws_notification
from .._client import ROLES, Level, Role, _user_id
from ..errors import ParkmateNotifyError
from ..tokens import mint_token_expiring

if TYPE_CHECKING:
    # Only for annotations: this package is also the Django app of INSTALLED_APPS, imported before
    # models may be.
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "SocketTokenMixin",
    "SocketTokenView",
    "default_role",
    "notify_on_commit",
    "socket_token_payload",
]

log = logging.getLogger("parkmate_notify")

#: The server's own default token lifetime (``PARKMATE_TOKEN_TTL``, 12 h). The server closes a socket
#: whose token expires (4001), so the front end asks this view again at each (re)connect.
DEFAULT_TOKEN_TTL = timedelta(hours=12)


def notify_on_commit(
    user_id: int | str,
    level: Level,
    message: str,
    *,
    event: str | None = None,
    data: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    using: str | None = None,
) -> None:
    """:func:`~parkmate_notify.send_ws_notification`, once the current transaction commits.

    A view that rolls back (an exception in ``transaction.atomic()``, ``ATOMIC_REQUESTS``) notifies
    nobody; outside a transaction it sends at once. The idempotency key is fixed now, so a retry of
    the send reuses it.

    The data is committed by the time this runs, so a failure to notify must not turn the request
    into an error (the user would retry a booking that succeeded): it is logged on the
    ``parkmate_notify`` logger with the exception, like the original's failures were, and the
    request goes on.
    """
    uid = _user_id(user_id)
    key = idempotency_key if idempotency_key is not None else uuid.uuid4().hex
    payload = dict(data) if data is not None else None

    def send() -> None:
        try:
            send_ws_notification(uid, level, message, event=event, data=payload, idempotency_key=key)
        except ParkmateNotifyError:
            log.exception("notification for user %s was committed but not sent", uid)

    # robust: should anything else escape, Django logs it and runs the other callbacks.
    transaction.on_commit(send, using=using, robust=True)


def default_role(user: AbstractBaseUser | AnonymousUser) -> Role:
    """The role a token for ``user`` carries, unless a view says otherwise.

    A ``role`` field on the user model (the original Parkmate's ``AuthUser.role`` is ``User``,
    ``Owner`` or ``Admin``) is used when it names a Parkmate role, in any case; otherwise superusers
    and staff are ``admin`` and everyone else ``user``.
    """
    role = getattr(user, "role", None)
    if isinstance(role, str):
        for known in ROLES:
            if role.lower() == known:
                return known
    if getattr(user, "is_superuser", False) or getattr(user, "is_staff", False):
        return "admin"
    return "user"


def socket_token_payload(
    user_id: int | str, role: Role, ttl: timedelta = DEFAULT_TOKEN_TTL
) -> dict[str, Any]:
    """What the token views answer: ``{"token", "user_id", "role", "expires_at"}``.

    ``expires_at`` is in seconds since the epoch, like the token's ``exp``.
    """
    token, expires_at = mint_token_expiring(user_id, role, ttl)
    return {"token": token, "user_id": _user_id(user_id), "role": role, "expires_at": expires_at}


class SocketTokenMixin:
    """Who the token is for. Override :meth:`get_user_id` when your notifications are addressed by
    another id than the user's primary key (the original Parkmate addressed profile ids), and
    :meth:`get_role` for your own roles; set :attr:`ttl` for another lifetime."""

    ttl: timedelta = DEFAULT_TOKEN_TTL

    def get_user_id(self, user: Any) -> int | str:
        pk = user.pk
        if not isinstance(pk, (int, str)):
            raise TypeError(f"user primary key {pk!r} is not an integer: override get_user_id()")
        return pk

    def get_role(self, user: Any) -> Role:
        return default_role(user)

    def token_payload(self, user: Any) -> dict[str, Any]:
        return socket_token_payload(self.get_user_id(user), self.get_role(user), self.ttl)


class SocketTokenView(SocketTokenMixin, View):
    """``GET`` → ``200 {"token", "user_id", "role", "expires_at"}`` for the session's user, ``401
    {"code": "not_authenticated", ...}`` without one. Never cached.

    For Django REST framework authentication (``Authorization: Token …``), use
    :class:`parkmate_notify.django.rest.SocketTokenAPIView` instead: a plain view only sees the
    session's user.
    """

    http_method_names = ["get"]

    def get(self, request: HttpRequest) -> JsonResponse:
        if not request.user.is_authenticated:
            response = JsonResponse(
                {"code": "not_authenticated", "message": "sign in to get a notification token"},
                status=401,
            )
        else:
            response = JsonResponse(self.token_payload(request.user))
        add_never_cache_headers(response)
        return response
