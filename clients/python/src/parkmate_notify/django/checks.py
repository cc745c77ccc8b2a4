"""``manage.py check`` for the settings: a missing URL, API key or JWT secret is a warning on every
``runserver`` and ``migrate``, and an error under ``manage.py check --deploy``, so a deploy pipeline
stops before the first booking finds out (and a build step without secrets is not blocked)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from .. import _config

_HINTS = {
    _config.URL: "the Parkmate Notify server's base URL, e.g. http://127.0.0.1:8001",
    _config.API_KEY: "the server's PARKMATE_API_KEY",
    _config.JWT_SECRET: "the server's PARKMATE_JWT_SECRET (for the socket-token views)",
}


def _problems(level: Callable[..., CheckMessage], prefix: str) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    for number, name in enumerate(_HINTS, start=1):
        value = _config.setting(name)
        if value is None:
            problems.append(level(f"{name} is not set", hint=_HINTS[name], id=f"parkmate_notify.{prefix}00{number}"))
    url = _config.setting(_config.URL)
    if url is not None and not url.startswith(("http://", "https://")):
        problems.append(
            level(f"{_config.URL} must start with http:// or https://", id=f"parkmate_notify.{prefix}004")
        )
    return problems


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return _problems(Warning, "W")


@register(deploy=True)
def check_settings_for_deploy(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return _problems(Error, "E")
