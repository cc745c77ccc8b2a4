"""The original module's one-line replacement: every caller of ``send_ws_notification`` keeps its
call and now sends once the transaction commits, logging (never raising) a failure, as the original
never raised."""

from __future__ import annotations

from parkmate_notify.django import notify_on_commit as send_ws_notification

__all__ = ["send_ws_notification"]
