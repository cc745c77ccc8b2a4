"""The optional Django app: ``INSTALLED_APPS += ["parkmate_notify.django"]`` turns on its checks."""

from __future__ import annotations

from django.apps import AppConfig


class ParkmateNotifyConfig(AppConfig):
    name = "parkmate_notify.django"
    label = "parkmate_notify"
    verbose_name = "Parkmate Notify"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
