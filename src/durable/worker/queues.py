"""Queues: where enqueued runs wait, and the flow control workers apply to them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from durable.errors import ConfigurationError
from durable.stores._checks import check_names
from durable.stores.base import QueueLimits

__all__ = ["DEFAULT_QUEUE", "Queue"]

DEFAULT_QUEUE = "default"


class Queue:
    """A named queue of an app, made by ``wf.queue(name, ...)``.

    ``concurrency`` caps the queue's runs executing at once across every
    worker; ``worker_concurrency`` caps them per worker process;
    ``rate_limit=(n, seconds)`` caps how many start in any window of that
    many seconds, across every worker. None means no cap.
    """

    __slots__ = ("concurrency", "name", "rate_limit", "worker_concurrency")

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name or not name.isprintable():
            raise ConfigurationError(f"queue name must be a non-empty printable string: {name!r}")
        check_names(queue_name=name)
        self.name = name
        self.concurrency = _cap(name, "concurrency", concurrency)
        self.worker_concurrency = _cap(name, "worker_concurrency", worker_concurrency)
        self.rate_limit = _rate_limit(name, rate_limit)

    def __repr__(self) -> str:
        options = [
            f"{key}={value!r}"
            for key in ("concurrency", "worker_concurrency", "rate_limit")
            if (value := getattr(self, key)) is not None
        ]
        return f"Queue({', '.join([repr(self.name), *options])})"

    def same_as(self, other: Queue) -> bool:
        return all(
            getattr(self, key) == getattr(other, key)
            for key in ("concurrency", "worker_concurrency", "rate_limit")
        )

    @property
    def limits(self) -> QueueLimits:
        """The caps the store enforces across every worker."""
        return QueueLimits(self.name, self.concurrency, self.rate_limit)


def _cap(queue: str, what: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"queue {queue!r}: {what} must be an int >= 1, got {value!r}")
    return value


def _rate_limit(queue: str, value: object) -> tuple[int, float] | None:
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2:
        count: object = value[0]
        seconds: object = value[1]
        if (
            isinstance(count, int)
            and not isinstance(count, bool)
            and count >= 1
            and isinstance(seconds, int | float)
            and not isinstance(seconds, bool)
            and 0 < seconds < math.inf
        ):
            return count, float(seconds)
    raise ConfigurationError(
        f"queue {queue!r}: rate_limit must be (starts, seconds) with starts an int >= 1 "
        f"and seconds > 0, e.g. (100, 60.0); got {value!r}"
    )


def resolve(
    queues: Mapping[str, Queue], names: list[str] | None, named: Iterable[str] = ()
) -> list[Queue]:
    """The queues a worker serves: ``names`` (declared or not), or every known one.

    Known: the declared queues, those ``named`` by workflows, and the default one.
    """
    if names is None:
        served = dict(queues)
        for name in (*named, DEFAULT_QUEUE):
            served.setdefault(name, Queue(name))
        return list(served.values())
    if isinstance(names, str) or not names:
        raise ConfigurationError(f"queues must be a non-empty list of queue names, got {names!r}")
    return [queues.get(name) or Queue(name) for name in dict.fromkeys(names)]
