"""The blocking client against the real server: every audience, every level, the errors a caller
branches on, and the retries that must never notify twice."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

import parkmate_notify
from parkmate_notify import ApiError, Client, ConfigurationError, RetryPolicy, Unavailable
from conftest import API_KEY, Server, free_port
from gateway import Gateway, running

FAST = RetryPolicy(retries=2, backoff=0.01, max_backoff=0.05)


def test_send_ws_notification_reaches_the_users_socket(srv: Server) -> None:
    user = srv.fresh_user()
    sock = srv.socket(user)
    with srv.client() as c:
        ids = c.send_ws_notification(
            user, "success", "Booking renewed successfully!", event="booking_renewed", data={"booking_id": 5}
        )
    (frame,) = sock.notifications(1)
    assert ids == [frame["id"]]
    assert frame["level"] == "success"
    assert frame["message"] == "Booking renewed successfully!"
    assert frame["event"] == "booking_renewed"
    assert frame["data"] == {"booking_id": 5}


def test_the_originals_positional_call_and_string_ids(srv: Server) -> None:
    user = srv.fresh_user()
    sock = srv.socket(user)
    with srv.client() as c:
        c.send_ws_notification(user, "warning", "Admin declined your booking request.")
        # The original documented user_id as "int or str".
        c.send_ws_notification(str(user), "info", "as a string")
    first, second = sock.notifications(2)
    assert (first["level"], first["message"], first["event"], first["data"]) == (
        "warning",
        "Admin declined your booking request.",
        "custom",
        {},
    )
    assert second["message"] == "as a string"


def test_every_level_arrives_as_sent(srv: Server) -> None:
    user = srv.fresh_user()
    sock = srv.socket(user)
    with srv.client() as c:
        for level in parkmate_notify.LEVELS:
            c.send_ws_notification(user, level, f"a {level} toast")
    assert [(n["level"], n["message"]) for n in sock.notifications(5)] == [
        (level, f"a {level} toast") for level in ("success", "error", "warning", "info", "confirm")
    ]


def test_to_users_reaches_each_user_once(srv: Server) -> None:
    a, b = srv.fresh_user(), srv.fresh_user()
    sock_a, sock_b = srv.socket(a), srv.socket(b)
    with srv.client() as c:
        ids = c.to_users([a, b, b], "info", "Lot closes at 22:00")
    assert len(ids) == 2
    assert [n["message"] for n in srv.before_sentinel(sock_a, a)] == ["Lot closes at 22:00"]
    assert [n["message"] for n in srv.before_sentinel(sock_b, b)] == ["Lot closes at 22:00"]


def test_to_role_reaches_that_role_only(srv: Server) -> None:
    owner, driver = srv.fresh_user(), srv.fresh_user()
    owner_sock, driver_sock = srv.socket(owner, "owner"), srv.socket(driver, "user")
    with srv.client() as c:
        (nid,) = c.to_role("owner", "info", "New booking received for Lot #2")
    assert [n["id"] for n in srv.before_sentinel(owner_sock, owner)] == [nid]
    assert srv.before_sentinel(driver_sock, driver) == []


def test_broadcast_reaches_every_role(srv: Server) -> None:
    users = [(srv.fresh_user(), role) for role in parkmate_notify.ROLES]
    socks = [srv.socket(u, role) for u, role in users]
    with srv.client() as c:
        (nid,) = c.broadcast("warning", "Maintenance tonight at 23:00")
    for (u, _), sock in zip(users, socks):
        assert [n["id"] for n in srv.before_sentinel(sock, u)] == [nid]


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        (lambda c: c.send_ws_notification(1, "loud", "m"), 422, "invalid_level"),
        (lambda c: c.send_ws_notification(1, "info", "   "), 422, "empty_message"),
        (lambda c: c.send_ws_notification(1, "info", "m" * 2001), 422, "message_too_long"),
        (lambda c: c.send_ws_notification(1, "info", "m", event="Booking Renewed"), 422, "invalid_event"),
        (lambda c: c.to_users([], "info", "m"), 422, "invalid_recipient"),
        (lambda c: c.to_role("pilot", "info", "m"), 422, "invalid_recipient"),
        (lambda c: c.send_ws_notification(1, "info", "m", idempotency_key=""), 400, "invalid_idempotency_key"),
    ],
)
def test_refusals_raise_api_error_with_the_servers_code(
    srv: Server, call: Callable[[Client], object], status: int, code: str
) -> None:
    with srv.client() as c, pytest.raises(ApiError) as err:
        call(c)
    assert (err.value.status, err.value.code) == (status, code)
    assert code in str(err.value)


def test_a_wrong_api_key_is_unauthorized_and_not_retried(srv: Server) -> None:
    gateway = Gateway(srv.url, lose=0)
    with running(gateway) as url, Client(url, "not-the-key", retry=FAST) as c, pytest.raises(ApiError) as err:
        c.send_ws_notification(1, "info", "m")
    assert (err.value.status, err.value.code) == (401, "unauthorized")
    assert len(gateway.keys) == 1


def test_a_retry_after_a_lost_answer_notifies_once(srv: Server, caplog: pytest.LogCaptureFixture) -> None:
    """The server stores the notification, the gateway loses the answer (503): the retry carries the
    same Idempotency-Key, so the server answers the stored id and the user sees one toast."""
    user = srv.fresh_user()
    sock = srv.socket(user)
    gateway = Gateway(srv.url, lose=1)
    with running(gateway) as url, Client(url, API_KEY, retry=FAST) as c, caplog.at_level(logging.WARNING):
        ids = c.send_ws_notification(user, "success", "Your cash payment has been verified")
    assert len(gateway.keys) == 2 and gateway.keys[0] == gateway.keys[1] and gateway.keys[0]
    seen = srv.before_sentinel(sock, user)
    assert [n["id"] for n in seen] == ids
    assert "retrying" in caplog.text and "503" in caplog.text


def test_each_call_has_its_own_key_so_equal_calls_both_arrive(srv: Server) -> None:
    user = srv.fresh_user()
    sock = srv.socket(user)
    gateway = Gateway(srv.url, lose=0)
    with running(gateway) as url, Client(url, API_KEY) as c:
        first = c.send_ws_notification(user, "info", "twice on purpose")
        second = c.send_ws_notification(user, "info", "twice on purpose")
    assert first != second and gateway.keys[0] != gateway.keys[1]
    assert [n["id"] for n in srv.before_sentinel(sock, user)] == first + second


def test_an_explicit_key_makes_a_rerun_caller_notify_once(srv: Server) -> None:
    """A view that runs twice for one renewal passes the same key both times."""
    user = srv.fresh_user()
    sock = srv.socket(user)
    with srv.client() as c:
        first = c.send_ws_notification(user, "success", "Booking renewed", idempotency_key=f"renewal-{user}")
        again = c.send_ws_notification(user, "success", "Booking renewed", idempotency_key=f"renewal-{user}")
    assert first == again
    assert [n["id"] for n in srv.before_sentinel(sock, user)] == first


def test_unreachable_server_raises_unavailable_after_the_retries() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", API_KEY, retry=FAST) as c, pytest.raises(Unavailable) as err:
        c.send_ws_notification(1, "info", "m")
    assert err.value.attempts == 3
    assert err.value.status is None
    assert isinstance(err.value.__cause__, Exception) and "Connect" in type(err.value.__cause__).__name__


def test_503_on_every_attempt_raises_unavailable_with_the_status(srv: Server) -> None:
    gateway = Gateway(srv.url, lose=100, forward=False)
    with running(gateway) as url, Client(url, API_KEY, retry=FAST) as c, pytest.raises(Unavailable) as err:
        c.send_ws_notification(1, "info", "m")
    assert (err.value.attempts, err.value.status, err.value.code) == (3, 503, "http_503")
    assert len(gateway.keys) == 3 and len(set(gateway.keys)) == 1


def test_bad_arguments_fail_before_any_request() -> None:
    with Client("http://127.0.0.1:9", API_KEY) as c:
        with pytest.raises(ValueError):
            c.send_ws_notification(-1, "info", "m")
        with pytest.raises(ValueError):
            c.send_ws_notification("forty-two", "info", "m")
        with pytest.raises(TypeError):
            c.send_ws_notification(True, "info", "m")
    with pytest.raises(ValueError):
        Client("127.0.0.1:8000", API_KEY)
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


def test_module_functions_read_the_environment(notify_env: Server) -> None:
    srv = notify_env
    driver, owner = srv.fresh_user(), srv.fresh_user()
    driver_sock, owner_sock = srv.socket(driver), srv.socket(owner, "owner")
    (a,) = parkmate_notify.send_ws_notification(driver, "success", "Your car wash service completed!")
    (b,) = parkmate_notify.to_users([driver], "info", "to users")
    (c,) = parkmate_notify.to_role("owner", "info", "to owners")
    (d,) = parkmate_notify.broadcast("info", "to everyone")
    assert [n["id"] for n in srv.before_sentinel(driver_sock, driver)] == [a, b, d]
    assert [n["id"] for n in srv.before_sentinel(owner_sock, owner)] == [c, d]


def test_module_functions_name_a_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="PARKMATE_NOTIFY_URL"):
        parkmate_notify.send_ws_notification(1, "info", "m")
    monkeypatch.setenv("PARKMATE_NOTIFY_URL", "http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="PARKMATE_NOTIFY_API_KEY"):
        parkmate_notify.broadcast("info", "m")


def test_plain_python_without_django(notify_env: Server) -> None:
    """The README's one-liner shape, in a fresh interpreter with no Django settings at all."""
    srv = notify_env
    user = srv.fresh_user()
    sock = srv.socket(user)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = f"import parkmate_notify as p; print(p.send_ws_notification({user}, 'success', 'Booking renewed successfully!'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    (frame,) = sock.notifications(1)
    assert out.stdout.strip() == f"[{frame['id']}]"
    assert frame["message"] == "Booking renewed successfully!"
