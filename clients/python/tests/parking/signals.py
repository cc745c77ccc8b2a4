"""A signal receiver as the original wrote them (event 6, "admin declined"), unchanged but for the
import it gets ``send_ws_notification`` from."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Booking
from .notification_utils import send_ws_notification


@receiver(post_save, sender=Booking)
def booking_status_changed(sender: type[Booking], instance: Booking, created: bool, **kwargs: Any) -> None:
    if instance.status == "CANCELLED_BY_ADMIN":
        send_ws_notification(instance.user_id, "warning", "Admin declined your booking request.")
