"""The Django integration in a real Django project (``demo_site``, shaped like the original
backend) against the real server: settings, ``notify_on_commit`` around real transactions, and the
socket-token views handing a browser a token the server accepts."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from django.core.checks import run_checks
from django.db import transaction
from django.test import AsyncClient as DjangoAsyncClient
from django.test import Client as DjangoClient
from pytest_django import Settings
from rest_framework.authtoken.models import Token

import parkmate_notify
from parkmate_notify.django import notify_on_commit
from conftest import API_KEY, JWT_SECRET, Server, Socket
from parking.models import AuthUser, Booking

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def configured(srv: Server, settings: Settings) -> Iterator[Server]:
    settings.PARKMATE_NOTIFY_URL = srv.url
    settings.PARKMATE_NOTIFY_API_KEY = API_KEY
    settings.PARKMATE_JWT_SECRET = JWT_SECRET
    yield srv


def make_user(username: str, role: str = "User") -> AuthUser:
    user = AuthUser.objects.create_user(username=username, password="pw-for-tests-only", role=role)
    assert isinstance(user, AuthUser)
    return user


def test_a_committed_renewal_notifies_after_the_commit(configured: Server) -> None:
    srv = configured
    user = make_user("dana")
    booking = Booking.objects.create(user=user)
    sock = srv.socket(user.pk)
    response = DjangoClient().post(f"/bookings/{booking.pk}/renew/")
    assert response.status_code == 200
    (frame,) = srv.before_sentinel(sock, user.pk)
    assert (frame["level"], frame["message"], frame["event"], frame["data"]) == (
        "success",
        "Booking renewed successfully!",
        "booking_renewed",
        {"booking_id": booking.pk},
    )


def test_a_rolled_back_renewal_notifies_nobody(configured: Server) -> None:
    srv = configured
    user = make_user("dev")
    booking = Booking.objects.create(user=user)
    sock = srv.socket(user.pk)
    client = DjangoClient(raise_request_exception=False)
    assert client.post(f"/bookings/{booking.pk}/renew/?fail=1").status_code == 500
    booking.refresh_from_db()
    assert booking.renewals == 0
    assert srv.before_sentinel(sock, user.pk) == []


def test_nothing_is_sent_before_the_commit(configured: Server) -> None:
    """Inside the transaction the notification is only queued: a marker sent meanwhile arrives
    first, and the notification follows when the block commits."""
    srv = configured
    user = srv.fresh_user()
    sock = srv.socket(user)
    with transaction.atomic():
        notify_on_commit(user, "info", "after the commit")
        marker = srv.sentinel(user)
    first, second = sock.notifications(2)
    assert first["id"] == marker
    assert second["message"] == "after the commit"


def test_a_failure_after_the_commit_is_logged_not_raised(
    configured: Server, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The booking is committed: the user must not see an error (and retry the booking) because a
    toast could not be sent. The failure goes to the ``parkmate_notify`` log with the server's code."""
    settings.PARKMATE_NOTIFY_API_KEY = "not-the-key"
    user = make_user("olga", role="Owner")
    booking = Booking.objects.create(user=user)
    with caplog.at_level(logging.ERROR, logger="parkmate_notify"):
        response = DjangoClient().post(f"/bookings/{booking.pk}/renew/")
    assert response.status_code == 200
    booking.refresh_from_db()
    assert booking.renewals == 1
    (record,) = [r for r in caplog.records if r.name == "parkmate_notify"]
    assert "committed but not sent" in record.getMessage()
    assert record.exc_info is not None and "unauthorized" in str(record.exc_info[1])


def test_the_originals_signal_receiver_works_through_the_one_line_replacement(configured: Server) -> None:
    """``parking/notification_utils.py`` re-exports ``notify_on_commit`` as ``send_ws_notification``:
    the original's post_save receiver is untouched, and notifies only for a committed decline."""
    srv = configured
    user = make_user("declined")
    kept = Booking.objects.create(user=user)
    declined = Booking.objects.create(user=user)
    sock = srv.socket(user.pk)
    with pytest.raises(RuntimeError), transaction.atomic():
        kept.status = "CANCELLED_BY_ADMIN"
        kept.save()
        raise RuntimeError("the admin's request failed after the save")
    declined.status = "CANCELLED_BY_ADMIN"
    declined.save()  # autocommit: sent at once
    assert [(n["level"], n["message"]) for n in srv.before_sentinel(sock, user.pk)] == [
        ("warning", "Admin declined your booking request.")
    ]


def test_the_replacement_never_raises_into_the_caller(
    configured: Server, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Like the original: an unreachable server is logged, and the save goes on."""
    settings.PARKMATE_NOTIFY_URL = "http://127.0.0.1:9"
    user = make_user("unlucky")
    booking = Booking.objects.create(user=user)
    booking.status = "CANCELLED_BY_ADMIN"
    with caplog.at_level(logging.ERROR, logger="parkmate_notify"):
        booking.save()
    assert Booking.objects.get(pk=booking.pk).status == "CANCELLED_BY_ADMIN"
    assert "committed but not sent" in caplog.text


def test_django_settings_take_precedence_over_the_environment(
    configured: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = configured
    monkeypatch.setenv("PARKMATE_NOTIFY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("PARKMATE_NOTIFY_API_KEY", "wrong")
    user = srv.fresh_user()
    sock = srv.socket(user)
    ids = parkmate_notify.send_ws_notification(user, "info", "through the Django settings")
    assert [n["id"] for n in sock.notifications(1)] == ids


@pytest.mark.anyio
async def test_an_async_view_publishes(configured: Server) -> None:
    srv = configured
    user = await AuthUser.objects.acreate(username="async-dana")
    booking = await Booking.objects.acreate(user=user)
    sock = srv.socket(user.pk)
    response = await DjangoAsyncClient().post(f"/bookings/{booking.pk}/renew-async/")
    assert response.status_code == 200
    (frame,) = sock.notifications(1)
    assert json.loads(response.content) == {"ids": [frame["id"]]}


def open_socket(srv: Server, payload: dict[str, object]) -> Socket:
    """The browser's next step: the socket, with the token the view gave."""
    return srv.open(f"/ws/notifications/{payload['user_id']}/?token={payload['token']}")


@pytest.mark.parametrize(("role", "expected"), [("User", "user"), ("Owner", "owner"), ("Admin", "admin")])
def test_the_session_token_view_opens_the_users_socket(configured: Server, role: str, expected: str) -> None:
    srv = configured
    user = make_user(f"someone-{role}", role=role)
    client = DjangoClient()
    client.force_login(user)
    response = client.get("/notifications/token/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    payload = response.json()
    assert (payload["user_id"], payload["role"]) == (user.pk, expected)
    sock = open_socket(srv, payload)
    assert (sock.hello["user_id"], sock.hello["role"]) == (user.pk, expected)
    sock.close()


def test_the_session_token_view_refuses_strangers(configured: Server) -> None:
    response = DjangoClient().get("/notifications/token/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert DjangoClient().post("/notifications/token/").status_code == 405


def test_the_rest_framework_token_view(configured: Server) -> None:
    """The original front end authenticates with DRF's ``Authorization: Token …``."""
    srv = configured
    user = make_user("otto", role="Owner")
    key = Token.objects.create(user=user).key
    response = DjangoClient().get("/api/notifications/token/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 200
    payload = response.json()
    assert payload["role"] == "owner"
    sock = open_socket(srv, payload)
    assert sock.hello["user_id"] == user.pk
    sock.close()
    assert DjangoClient().get("/api/notifications/token/").status_code == 401


def test_roles_come_from_the_role_field_else_from_staff() -> None:
    from parkmate_notify.django import default_role

    staff = AuthUser(username="ada", is_staff=True, role="")
    assert default_role(staff) == "admin"
    assert default_role(AuthUser(username="x", role="")) == "user"
    assert default_role(AuthUser(username="y", role="Owner")) == "owner"


def test_checks_name_missing_settings(settings: Settings) -> None:
    for name in ("PARKMATE_NOTIFY_URL", "PARKMATE_NOTIFY_API_KEY", "PARKMATE_JWT_SECRET"):
        if hasattr(settings, name):
            delattr(settings, name)
    assert {m.id for m in run_checks()} >= {
        "parkmate_notify.W001",
        "parkmate_notify.W002",
        "parkmate_notify.W003",
    }
    assert {m.id for m in run_checks(include_deployment_checks=True)} >= {
        "parkmate_notify.E001",
        "parkmate_notify.E002",
        "parkmate_notify.E003",
    }
    settings.PARKMATE_NOTIFY_URL = "127.0.0.1:8001"
    settings.PARKMATE_NOTIFY_API_KEY = "k"
    settings.PARKMATE_JWT_SECRET = "s"
    assert [m.id for m in run_checks() if m.id and m.id.startswith("parkmate_notify")] == ["parkmate_notify.W004"]
