"""Socket tokens for backends that sign in their own users (Django's auth, say).

The browser opens ``/ws/notifications/{user_id}/`` with a token; the server accepts exactly what
``parkmate token`` mints: HS256 over the shared ``PARKMATE_JWT_SECRET``, with ``sub`` the user id as
a decimal string, ``role``, ``iat`` and ``exp`` (seconds since the epoch). The server allows no clock
leeway, and closes a socket with 4001 when its token expires: the front end then asks for a new one.
"""

from __future__ import annotations

import time
from datetime import timedelta

import jwt

from . import _config
from ._client import ROLES, Role, _user_id

__all__ = ["mint_token", "mint_token_expiring"]


def mint_token(
    user_id: int | str,
    role: Role,
    ttl: int | timedelta,
    *,
    secret: str | None = None,
) -> str:
    """A token that lets ``user_id`` (with ``role``) open their notification socket for ``ttl``.

    ``secret`` defaults to ``PARKMATE_JWT_SECRET`` (Django setting, else environment), the same
    value the server has.
    """
    return mint_token_expiring(user_id, role, ttl, secret=secret)[0]


def mint_token_expiring(
    user_id: int | str,
    role: Role,
    ttl: int | timedelta,
    *,
    secret: str | None = None,
) -> tuple[str, int]:
    """:func:`mint_token` and the token's ``exp`` (seconds since the epoch)."""
    uid = _user_id(user_id)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    seconds = int(ttl.total_seconds()) if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
    key = secret if secret is not None else _config.require(_config.JWT_SECRET)
    if not key:
        raise ValueError("the JWT secret must not be empty")
    now = int(time.time())
    exp = now + seconds
    claims = {"sub": str(uid), "role": role, "iat": now, "exp": exp}
    return jwt.encode(claims, key, algorithm="HS256"), exp
