"""The original front end against our socket.

The original React hook (``useWebSocketNotifications.js`` of the Django Channels Parkmate) opens
``/ws/notifications/{userId}/`` without a token, and its ``onmessage`` does, in order: parse the
frame as JSON; ignore it when ``connected`` is ``true`` (the consumer's greeting); show a success
toast for ``type == "carwash_completed"``; otherwise take the toast kind from ``type`` (default
``info``) and the text from ``message`` (default ``"Notification received"``), and call
``toast.success/error/warning/info``, falling back to ``toast.info`` for any other kind. The original
consumer sent ``{"type": <level>, "message": <message>}`` — the level travelled in ``type``.

:func:`original_onmessage` is that handler, step for step; :func:`migrated_onmessage` is the same
handler with the two-line change that is one of the guide's three options
(``docs/migrating-from-django-channels.md``: keep ``onmessage`` on the ``parkmate.channels``
sub-protocol, use the npm package, or read the native frames as here). The tests read real
frames from the real server exactly as the browser would receive them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from conftest import Server, Socket

Toast = tuple[str, str]

#: The toast methods the original hook maps; any other kind falls back to ``info``.
TOAST_METHODS = ("success", "error", "warning", "info")


def _toast(kind: Any, message: Any) -> Toast:
    kind = kind or "info"
    return (kind if kind in TOAST_METHODS else "info", message or "Notification received")


def original_onmessage(raw: str) -> Toast | None:
    """The original hook's ``onmessage``: what toast one frame shows, if any."""
    data = json.loads(raw)
    if data.get("connected") is True:
        return None
    if data.get("type") == "carwash_completed":
        return ("success", data.get("message"))
    return _toast(data.get("type"), data.get("message"))


class LastShown:
    """The hook's ``lastIdRef``: the id of the last notification shown (0: none yet)."""

    id = 0


def migrated_onmessage(raw: str, last: LastShown) -> Toast | None:
    """The handler after the guide's change: only ``notification`` frames toast, by ``level``, and
    never an id at or below the last one shown (ids only grow, so a replay repeats nothing)."""
    data = json.loads(raw)
    if data.get("type") != "notification":
        return None
    if data["id"] <= last.id:
        return None
    last.id = data["id"]
    return _toast(data.get("level"), data.get("message"))


def toasts(frames: list[str], handler: Any) -> list[Toast]:
    return [t for t in map(handler, frames) if t is not None]


def original_consumer_frame(level: str, message: str) -> str:
    """What the original Channels consumer sent for ``send_ws_notification(user, level, message)``."""
    return json.dumps({"type": level, "message": message})


def with_token_in_url(srv: Server, user: int, query: str = "") -> Socket:
    """The original hook's socket with the one change every client needs: a token."""
    return srv.open(f"/ws/notifications/{user}/?token={srv.token(user)}{query}")


MESSAGES = [
    ("success", "Booking renewed successfully!"),
    ("error", "Renewal failed: card declined"),
    ("warning", "Admin declined your booking request."),
    ("info", "New booking received for Lot #2"),
    ("confirm", "Booking confirmed"),
]


def test_the_original_url_is_served_but_wants_a_token(srv: Server) -> None:
    user = srv.fresh_user()
    with pytest.raises(InvalidStatus) as err:
        srv.open(f"/ws/notifications/{user}/")
    assert err.value.response.status_code == 401
    assert json.loads(err.value.response.body or b"{}")["code"] == "missing_token"


def test_the_unchanged_handler_misreads_our_frames(srv: Server) -> None:
    """Why the guide changes two lines of ``onmessage``: our frames carry the level in ``level``
    and say what they are in ``type``, so the unchanged handler shows every notification as a blue
    info toast and toasts "Notification received" for the greeting and every unread count."""
    user = srv.fresh_user()
    sock = with_token_in_url(srv, user)
    with srv.client() as c:
        c.send_ws_notification(user, "success", "Booking renewed successfully!")
    frames = [sock.hello_raw, *sock.raw_until(lambda f: f["type"] == "unread_count")]
    sock.close()
    assert toasts(frames, original_onmessage) == [
        ("info", "Notification received"),  # hello
        ("info", "Booking renewed successfully!"),  # the success notification, as info
        ("info", "Notification received"),  # unread_count
    ]


def test_the_migrated_handler_shows_the_originals_toasts(srv: Server) -> None:
    """Same toasts: the migrated handler on our frames shows exactly what the original handler
    showed for the original consumer's frames, for every level."""
    user = srv.fresh_user()
    sock = with_token_in_url(srv, user)
    with srv.client() as c:
        for level, message in MESSAGES:
            c.send_ws_notification(user, level, message)  # type: ignore[arg-type]
    count = 0

    def fifth_notification_counted(frame: dict[str, Any]) -> bool:
        nonlocal count
        count += frame["type"] == "notification"
        return count == len(MESSAGES) and bool(frame["type"] == "unread_count")

    frames = [sock.hello_raw, *sock.raw_until(fifth_notification_counted)]
    sock.close()
    last = LastShown()
    before = toasts([original_consumer_frame(level, m) for level, m in MESSAGES], original_onmessage)
    after = toasts(frames, lambda raw: migrated_onmessage(raw, last))
    assert after == before
    assert after[0] == ("success", "Booking renewed successfully!")


def test_the_migrated_handler_catches_up_after_a_reconnect_without_repeats(srv: Server) -> None:
    """With ``since`` (the last id shown) a reconnect replays what was missed, in order; the original
    lost everything sent while it was away. Even a reconnect from too far back (a lost
    ``localStorage``, another tab's older id) toasts nothing twice."""
    user = srv.fresh_user()
    last = LastShown()
    with srv.client() as client:
        sock = with_token_in_url(srv, user)
        (first,) = client.send_ws_notification(user, "success", "Booking renewed successfully!")
        shown = toasts(sock.raw_until(lambda f: f["type"] == "notification"), lambda r: migrated_onmessage(r, last))
        sock.close()
        assert last.id == first

        client.send_ws_notification(user, "warning", "Your booking for Slot #3 has expired.")
        client.send_ws_notification(user, "success", "Your cash payment has been verified")
    sock = with_token_in_url(srv, user, f"&since={last.id}")
    replayed = sock.raw_until(lambda f: f["type"] == "replayed")
    shown += toasts(replayed, lambda r: migrated_onmessage(r, last))
    # From before the first one: the server replays all three, the handler shows none again.
    again = with_token_in_url(srv, user, f"&since={first - 1}").raw_until(lambda f: f["type"] == "replayed")
    assert sum(json.loads(r)["type"] == "notification" for r in again) == 3
    shown += toasts(again, lambda r: migrated_onmessage(r, last))
    assert shown == [
        ("success", "Booking renewed successfully!"),
        ("warning", "Your booking for Slot #3 has expired."),
        ("success", "Your cash payment has been verified"),
    ]
