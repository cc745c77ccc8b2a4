"""Views written the way the original's are, with the one-line change the migration asks for:
``notify_on_commit`` where the original called ``send_ws_notification`` inside the transaction."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404

import parkmate_notify
from parkmate_notify.django import notify_on_commit

from .models import Booking


def renew(request: HttpRequest, booking_id: int) -> JsonResponse:
    with transaction.atomic():
        booking = get_object_or_404(Booking.objects.select_for_update(), pk=booking_id)
        booking.renewals += 1
        booking.save()
        notify_on_commit(
            booking.user_id,
            "success",
            "Booking renewed successfully!",
            event="booking_renewed",
            data={"booking_id": booking.pk},
        )
        if request.GET.get("fail"):
            # Something after the notification fails: the renewal rolls back, and so must the toast.
            raise RuntimeError("payment gateway said no")
    return JsonResponse({"renewals": booking.renewals})


async def renew_async(request: HttpRequest, booking_id: int) -> JsonResponse:
    """An async view publishing directly (no transaction to wait for)."""
    booking = await Booking.objects.aget(pk=booking_id)
    ids = await parkmate_notify.asend_ws_notification(
        booking.user_id, "success", "Booking renewed successfully!", event="booking_renewed"
    )
    return JsonResponse({"ids": ids})
