"""Change notifications: WebSub publish pings and Podping, sent in the background with retries."""

from media_pub.notify.notifier import MEDIUMS, REASONS, Notifier

__all__ = ["MEDIUMS", "REASONS", "Notifier"]
