"""The Redis backplane (needs redis-py): see `backplane.RedisBackplane` and its parts."""

from .backplane import BackplaneStats, RedisBackplane
from .keys import KeyLayout
from .sessions import RedisSessionDirectory

__all__ = ["BackplaneStats", "KeyLayout", "RedisBackplane", "RedisSessionDirectory"]
