"""``RedisStore`` under python-durable 0.2's module path (needs the ``redis`` extra)."""

from durable.stores.redis import RedisStore as RedisStore

__all__ = ["RedisStore"]
