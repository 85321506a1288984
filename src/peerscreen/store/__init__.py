"""Pluggable room stores: :func:`create_store` picks one from the settings."""

from __future__ import annotations

from ..config import Settings
from .base import (
    AddViewerResult,
    Listener,
    MailBudget,
    Message,
    Refusal,
    RoomRecord,
    Store,
    Stored,
    ViewerRecord,
)

__all__ = [
    "AddViewerResult",
    "Listener",
    "MailBudget",
    "Message",
    "Refusal",
    "RoomRecord",
    "Store",
    "Stored",
    "ViewerRecord",
    "create_store",
]


def create_store(settings: Settings) -> Store:
    """The in-memory store, or the Redis store when a Redis URL is configured (a Redis
    Cluster for a ``redis+cluster://`` URL)."""
    if settings.redis_url and settings.redis_url.startswith("redis+cluster://"):
        from .redis_cluster import RedisClusterStore

        return RedisClusterStore(settings.redis_url, max_connections=settings.redis_max_connections)
    if settings.redis_url:
        from .redis import RedisStore

        return RedisStore(settings.redis_url, max_connections=settings.redis_max_connections)
    from .memory import MemoryStore

    return MemoryStore()
