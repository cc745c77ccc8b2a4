"""A real ``parkmate`` server for the whole session, and helpers that read its sockets.

The binary is ``$PARKMATE_BIN``, else this checkout's ``target/debug/parkmate``, else
``target/release/parkmate`` (``scripts/test-python`` builds and passes it). The server runs on a free
loopback port with its own SQLite database and fixed secrets; the tests never sleep: they wait for
``/healthz``, and read frames until the one they expect arrives (with a deadline).

Tests share the server, so each one addresses its own users (``fresh_user``) and proves that
something was *not* sent by publishing a sentinel after it and checking what came first: the server
sends a user's notifications in id order.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

import parkmate_notify
from parkmate_notify import Client, Role, mint_token

REPO = Path(__file__).resolve().parents[3]
JWT_SECRET = "python-client-tests-jwt-secret-0123456789"
API_KEY = "python-client-tests-api-key-0123456789"
# Deadline for any awaited event (server start, a frame): generous for a loaded CI machine, and
# only ever reached when a test is failing.
DEADLINE_SECS = 30.0


def server_env(port: int, data_dir: Path) -> dict[str, str]:
    """Every server setting the tests depend on, in one place (see README's settings table).

    The inherited environment is passed on without any ``PARKMATE_*`` variable: the server refuses
    names it does not know (``PARKMATE_BIN``, the client's ``PARKMATE_NOTIFY_*``), and a
    developer's own settings must not leak into the tests.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PARKMATE_")}
    return {
        **inherited,
        "PARKMATE_ENV": "test",
        "PARKMATE_BIND": f"127.0.0.1:{port}",
        "PARKMATE_DATABASE_URL": f"sqlite://{data_dir}/p.db",
        "PARKMATE_DATA_DIR": str(data_dir),
        "PARKMATE_JWT_SECRET": JWT_SECRET,
        "PARKMATE_API_KEY": API_KEY,
        "PARKMATE_BOOKING_DEMO_DATA": "false",
        "PARKMATE_LOG": "warn",
        # One node: its sockets have nowhere else to go during a drain (the Rust suite tests it).
        "PARKMATE_SHUTDOWN_DRAIN": "0s",
    }


def server_binary() -> Path:
    given = os.environ.get("PARKMATE_BIN")
    if given:
        path = Path(given)
        if not path.is_file():
            raise pytest.UsageError(f"PARKMATE_BIN={given} is not a file")
        return path
    for profile in ("debug", "release"):
        path = REPO / "target" / profile / "parkmate"
        if path.is_file():
            return path
    raise pytest.UsageError(
        "no parkmate binary: run scripts/test-python, `cargo build -p parkmate-server`, or set PARKMATE_BIN"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Socket:
    """One notification WebSocket, read the way a test needs it."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        raw = conn.recv(timeout=DEADLINE_SECS)
        assert isinstance(raw, str), "the server sends text frames"
        #: The first frame, as sent and parsed.
        self.hello_raw = raw
        self.hello: dict[str, Any] = json.loads(raw)
        assert self.hello["type"] == "hello", self.hello

    def next_frame(self) -> dict[str, Any]:
        raw = self.conn.recv(timeout=DEADLINE_SECS)
        assert isinstance(raw, str), "the server sends text frames"
        frame: dict[str, Any] = json.loads(raw)
        return frame

    def raw_until(self, done: Callable[[dict[str, Any]], bool]) -> list[str]:
        """Every text frame up to and including the first one ``done`` accepts, as sent."""
        frames: list[str] = []
        while True:
            raw = self.conn.recv(timeout=DEADLINE_SECS)
            assert isinstance(raw, str)
            frames.append(raw)
            if done(json.loads(raw)):
                return frames

    def notifications(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` notification frames (other frames are skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = self.next_frame()
            if frame["type"] == "notification":
                found.append(frame)
        return found

    def close(self) -> None:
        self.conn.close()


@dataclass
class Server:
    url: str
    log: Path
    _users: Iterator[int] = field(default_factory=lambda: itertools.count(1000))
    #: The sockets the current test opened, closed when it ends.
    _sockets: ExitStack = field(default_factory=ExitStack)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def fresh_user(self) -> int:
        """A user id no other test uses."""
        return next(self._users)

    def client(self) -> Client:
        return Client(self.url, API_KEY)

    def token(self, user_id: int, role: Role = "user") -> str:
        return mint_token(user_id, role, 600, secret=JWT_SECRET)

    def open(self, path: str, subprotocols: list[str] | None = None) -> Socket:
        """A socket to ``path`` (with its query), hello already read; closed when the test ends."""
        conn = self._sockets.enter_context(
            connect(
                self.ws_url + path,
                subprotocols=[Subprotocol(p) for p in subprotocols] if subprotocols else None,
                open_timeout=DEADLINE_SECS,
            )
        )
        return Socket(conn)

    def socket(self, user_id: int, role: Role = "user", *, since: int | None = None) -> Socket:
        """The user's socket, authenticated as a browser does (sub-protocol)."""
        query = "" if since is None else f"?since={since}"
        return self.open(
            f"/ws/notifications/{user_id}/{query}",
            ["parkmate.v1", f"bearer.{self.token(user_id, role)}"],
        )

    def sentinel(self, user_id: int) -> int:
        """Publishes a marker to ``user_id`` and answers its id: whatever a socket reads before it
        was published before it."""
        with self.client() as c:
            return c.send_ws_notification(user_id, "info", "sentinel", event="test_sentinel")[0]

    def before_sentinel(self, sock: Socket, user_id: int) -> list[dict[str, Any]]:
        """The notifications ``sock`` receives before a sentinel published now."""
        marker = self.sentinel(user_id)
        seen: list[dict[str, Any]] = []
        while True:
            (n,) = sock.notifications(1)
            if n["id"] == marker:
                return seen
            seen.append(n)

    def close_sockets(self) -> None:
        self._sockets.close()
        self._sockets = ExitStack()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("parkmate")
    port = free_port()
    log = data_dir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(server_binary()), "serve"],
            env=server_env(port, data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log)
        yield Server(url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=DEADLINE_SECS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Polls ``/healthz`` until it answers 200; fails at once if the server exits."""
    deadline = time.monotonic() + DEADLINE_SECS
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"parkmate exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if http.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    pytest.fail(f"parkmate did not become healthy in {DEADLINE_SECS} s:\n{log.read_text()}")


@pytest.fixture
def srv(server: Server) -> Iterator[Server]:
    """The session's server, with this test's sockets closed afterwards."""
    yield server
    server.close_sockets()


@pytest.fixture
def notify_env(srv: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """Configures the module-level functions through the environment."""
    monkeypatch.setenv("PARKMATE_NOTIFY_URL", srv.url)
    monkeypatch.setenv("PARKMATE_NOTIFY_API_KEY", API_KEY)
    monkeypatch.setenv("PARKMATE_JWT_SECRET", JWT_SECRET)
    return srv


@pytest.fixture(autouse=True)
def _no_stray_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an unconfigured module: nothing from the developer's shell."""
    for name in ("PARKMATE_NOTIFY_URL", "PARKMATE_NOTIFY_API_KEY", "PARKMATE_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session", autouse=True)
def _close_shared_client() -> Iterator[None]:
    yield
    shared = parkmate_notify._shared
    if shared is not None:
        shared[1].close()


@pytest.fixture
def anyio_backend() -> str:
    # Django's async views and websockets run on asyncio.
    return "asyncio"
