from __future__ import annotations

from django.urls import path

from parking import views
from parkmate_notify.django import SocketTokenView
from parkmate_notify.django.rest import SocketTokenAPIView

urlpatterns = [
    path("bookings/<int:booking_id>/renew/", views.renew),
    path("bookings/<int:booking_id>/renew-async/", views.renew_async),
    path("notifications/token/", SocketTokenView.as_view()),
    path("api/notifications/token/", SocketTokenAPIView.as_view()),
]
