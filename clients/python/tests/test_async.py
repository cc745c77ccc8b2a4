"""The async twins: the same calls awaited, the same retries."""

from __future__ import annotations

import pytest

import parkmate_notify
from parkmate_notify import ApiError, AsyncClient, RetryPolicy, Unavailable
from conftest import API_KEY, Server, free_port
from gateway import Gateway, running

pytestmark = pytest.mark.anyio


async def test_async_client_every_audience(srv: Server) -> None:
    driver, owner = srv.fresh_user(), srv.fresh_user()
    driver_sock, owner_sock = srv.socket(driver), srv.socket(owner, "owner")
    async with AsyncClient(srv.url, API_KEY) as c:
        (a,) = await c.send_ws_notification(driver, "success", "Booking renewed successfully!", data={"booking_id": 1})
        (b,) = await c.to_users([driver], "info", "users")
        (c_id,) = await c.to_role("owner", "info", "owners")
        (d,) = await c.broadcast("warning", "everyone")
    assert [n["id"] for n in srv.before_sentinel(driver_sock, driver)] == [a, b, d]
    assert [n["id"] for n in srv.before_sentinel(owner_sock, owner)] == [c_id, d]


async def test_async_module_functions_read_the_environment(notify_env: Server) -> None:
    srv = notify_env
    driver, owner = srv.fresh_user(), srv.fresh_user()
    driver_sock, owner_sock = srv.socket(driver), srv.socket(owner, "owner")
    (a,) = await parkmate_notify.asend_ws_notification(driver, "success", "Payment verified")
    (b,) = await parkmate_notify.ato_users([driver], "info", "users")
    (c,) = await parkmate_notify.ato_role("owner", "info", "owners")
    (d,) = await parkmate_notify.abroadcast("info", "everyone")
    assert [n["id"] for n in srv.before_sentinel(driver_sock, driver)] == [a, b, d]
    assert [n["id"] for n in srv.before_sentinel(owner_sock, owner)] == [c, d]


async def test_async_retry_after_a_lost_answer_notifies_once(srv: Server) -> None:
    user = srv.fresh_user()
    sock = srv.socket(user)
    gateway = Gateway(srv.url, lose=2)
    with running(gateway) as url:
        async with AsyncClient(url, API_KEY, retry=RetryPolicy(retries=2, backoff=0.01)) as c:
            ids = await c.send_ws_notification(user, "success", "once")
    assert len(gateway.keys) == 3 and len(set(gateway.keys)) == 1
    assert [n["id"] for n in srv.before_sentinel(sock, user)] == ids


async def test_async_errors(srv: Server) -> None:
    async with AsyncClient(srv.url, API_KEY) as c:
        with pytest.raises(ApiError) as err:
            await c.send_ws_notification(1, "loud", "m")  # type: ignore[arg-type]
    assert err.value.code == "invalid_level"
    fast = RetryPolicy(retries=1, backoff=0.01)
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", API_KEY, retry=fast) as c:
        with pytest.raises(Unavailable) as gone:
            await c.broadcast("info", "m")
    assert gone.value.attempts == 2
