"""The parts of the original Parkmate's models the tests need: a user with a ``role`` (its values
spelled as the original spelled them) and a booking that can be renewed."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models


class AuthUser(AbstractUser):
    ROLE_CHOICES = (("User", "User"), ("Owner", "Owner"), ("Admin", "Admin"))
    role = models.CharField(max_length=15, choices=ROLE_CHOICES, default="User")


class Booking(models.Model):
    user = models.ForeignKey(AuthUser, on_delete=models.CASCADE, related_name="bookings")
    status = models.CharField(max_length=30, default="CONFIRMED")
    renewals = models.PositiveIntegerField(default=0)
