"""mint_token: the tokens the server's sockets accept, and the ones they refuse."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
from websockets.exceptions import InvalidStatus

from parkmate_notify import ConfigurationError, mint_token
from conftest import JWT_SECRET, Server, Socket


def open_with(srv: Server, path_user: int, token: str) -> Socket:
    return srv.open(f"/ws/notifications/{path_user}/?token={token}")


def refusal(srv: Server, path_user: int, token: str) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as err:
        open_with(srv, path_user, token)
    response = err.value.response
    return response.status_code, json.loads(response.body or b"{}")["code"]


@pytest.mark.parametrize("role", ["user", "owner", "admin", "employee"])
def test_the_server_accepts_minted_tokens(srv: Server, role: str) -> None:
    user = srv.fresh_user()
    sock = open_with(srv, user, mint_token(user, role, timedelta(minutes=5), secret=JWT_SECRET))  # type: ignore[arg-type]
    assert (sock.hello["user_id"], sock.hello["role"]) == (user, role)


def test_claims_are_the_servers() -> None:
    token = mint_token(42, "owner", 600, secret=JWT_SECRET)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42" and claims["role"] == "owner"
    assert claims["exp"] - claims["iat"] == 600


def test_the_secret_comes_from_the_environment(srv: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="PARKMATE_JWT_SECRET"):
        mint_token(1, "user", 60)
    monkeypatch.setenv("PARKMATE_JWT_SECRET", JWT_SECRET)
    user = srv.fresh_user()
    assert open_with(srv, user, mint_token(user, "user", 60)).hello["user_id"] == user


def test_the_server_refuses_a_wrong_secret_and_another_users_path(srv: Server) -> None:
    user = srv.fresh_user()
    forged = mint_token(user, "admin", 60, secret="not-the-servers-secret-not-the-servers")
    assert refusal(srv, user, forged) == (401, "invalid_token")
    assert refusal(srv, user + 1, mint_token(user, "user", 60, secret=JWT_SECRET)) == (403, "forbidden")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((1, "pilot", 60), ValueError),
        ((1, "User", 60), ValueError),
        ((1, "user", 0), ValueError),
        ((1, "user", timedelta(seconds=-5)), ValueError),
        ((1, "user", True), ValueError),
        ((-1, "user", 60), ValueError),
    ],
)
def test_bad_arguments(args: tuple[object, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        mint_token(*args, secret=JWT_SECRET)  # type: ignore[arg-type]
