"""Where the module-level functions find their settings.

An explicit argument wins; inside a configured Django project a Django setting of the variable's name
comes next; the process environment last. A setting that is missing everywhere is a
:class:`~parkmate_notify.errors.ConfigurationError` naming it, never a silent default: a notification
sent to the wrong server, or never sent, is worse than a clear start-up error.
"""

from __future__ import annotations

import os

from .errors import ConfigurationError

URL = "PARKMATE_NOTIFY_URL"
API_KEY = "PARKMATE_NOTIFY_API_KEY"
# The server's own variable: a backend that mints tokens shares the server's secret, and one name
# for one secret keeps deployment files honest.
JWT_SECRET = "PARKMATE_JWT_SECRET"


def _django_setting(name: str) -> str | None:
    """The Django setting ``name`` when Django is installed, configured and defines it."""
    try:
        from django.conf import settings
    except ImportError:
        return None
    if not settings.configured:
        return None
    value = getattr(settings, name, None)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"the Django setting {name} must be a string")
    return value


def setting(name: str) -> str | None:
    """``name`` from Django's settings, else from the environment; ``None`` when unset or empty."""
    value = _django_setting(name)
    if value is None:
        value = os.environ.get(name)
    return value or None


def require(name: str) -> str:
    value = setting(name)
    if value is None:
        raise ConfigurationError(
            f"{name} is not set: set it in the environment"
            " (or as a Django setting of that name), or pass it explicitly"
        )
    return value
