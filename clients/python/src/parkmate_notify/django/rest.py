"""The socket-token view for Django REST framework projects (the original Parkmate authenticates
with DRF's ``TokenAuthentication``): the same answer as
:class:`parkmate_notify.django.SocketTokenView`, for whoever DRF's authentication classes accept.
"""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from django.utils.cache import add_never_cache_headers

from . import SocketTokenMixin

__all__ = ["SocketTokenAPIView"]


class SocketTokenAPIView(SocketTokenMixin, APIView):
    """``GET`` → ``{"token", "user_id", "role", "expires_at"}``; DRF answers 401/403 otherwise."""

    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        response = Response(self.token_payload(request.user))
        add_never_cache_headers(response)
        return response
