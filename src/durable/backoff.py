"""Wait times between task retries.

A backoff maps the retry number (1 for the first retry, 2 for the second, ...)
to seconds to wait before it::

    exponential(base=2, max=60)               2, 4, 8, 16, 32, 60, 60, ...
    exponential(base=2, max=5, initial=0.1)   0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5, ...
    linear(start=2, step=3)                   2, 5, 8, 11, ...
    constant(5)                               5, 5, 5, ...

``backoff=`` of a task also takes any callable with the same meaning, e.g.
``backoff=lambda retry: 0.5 * retry``.

Each accepts ``jitter``: a fraction in [0, 1]; a wait of ``w`` then becomes a
random value in ``[w * (1 - jitter), w]`` so that many clients failing
together do not retry in lockstep.

An invalid parameter raises :class:`~durable.errors.ConfigurationError` (a
``ValueError``) naming it.
"""

from __future__ import annotations

from typing import Protocol

from durable.errors import ConfigurationError

__all__ = ["Backoff", "BackoffStrategy", "constant", "exponential", "linear"]


class Backoff(Protocol):
    """Anything that gives the wait in seconds before retry number ``retry`` (1-based)."""

    def __call__(self, retry: int) -> float: ...


# python-durable 0.2's name for the same thing. Its callables received the
# retry number counting from 0; ours count from 1 (see the README's migration notes).
BackoffStrategy = Backoff


def _check(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"backoff parameter {name!r} must be a number, got {value!r}")
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigurationError(f"backoff parameter {name!r} must be finite, got {value!r}")
    if value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigurationError(f"backoff parameter {name!r} must be {bound}, got {value!r}")
    return float(value)


def _check_jitter(jitter: float) -> float:
    _check("jitter", jitter)
    if jitter > 1:
        raise ConfigurationError(f"backoff parameter 'jitter' must be in [0, 1], got {jitter!r}")
    return float(jitter)


def _jittered(wait: float, jitter: float) -> float:
    if not jitter:
        return wait
    import random  # on first use: jitter is opt-in

    return wait * (1 - jitter * random.random())


def _check_retry(retry: int) -> None:
    if retry < 1:
        raise ValueError(f"retry numbers start at 1, got {retry!r}")


class _Policy:
    """An immutable backoff policy, equal to another with the same parameters.

    Plain slotted classes rather than dataclasses: ``import durable`` stays cheap.
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    def __init__(self, *values: float | None) -> None:
        for name, value in zip(self._fields, values, strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Policy)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


class _Exponential(_Policy):
    __slots__ = ("base", "initial", "jitter", "max")
    _fields = ("base", "max", "initial", "jitter")
    base: float
    max: float
    initial: float
    jitter: float

    def __call__(self, retry: int) -> float:
        _check_retry(retry)
        # Cap the exponent so huge retry numbers cannot overflow a float.
        if retry > 1023:
            return _jittered(self.max, self.jitter)
        return _jittered(min(self.initial * self.base ** (retry - 1), self.max), self.jitter)


class _Linear(_Policy):
    __slots__ = ("jitter", "max", "start", "step")
    _fields = ("start", "step", "max", "jitter")
    start: float
    step: float
    max: float | None
    jitter: float

    def __call__(self, retry: int) -> float:
        _check_retry(retry)
        wait = self.start + self.step * (retry - 1)
        if self.max is not None:
            wait = min(wait, self.max)
        return _jittered(wait, self.jitter)


class _Constant(_Policy):
    __slots__ = ("jitter", "seconds")
    _fields = ("seconds", "jitter")
    seconds: float
    jitter: float

    def __call__(self, retry: int) -> float:
        _check_retry(retry)
        return _jittered(self.seconds, self.jitter)


def exponential(
    base: float = 2, max: float = 60, *, initial: float | None = None, jitter: float = 0.0
) -> Backoff:
    """Wait ``min(initial * base ** (retry - 1), max)`` seconds, growing by ``base`` each retry.

    ``initial`` is the first wait and defaults to ``base``, so that
    ``exponential(base=2, max=60)`` waits 2, 4, 8, 16, 32, 60, ...; "start at
    100 ms and double" is ``exponential(base=2, initial=0.1)``. ``base`` must
    be greater than 1 (waits must grow). ``max`` caps every wait; ``jitter``
    (0 to 1) randomly shortens waits.
    """
    _check("base", base, positive=True)
    if base <= 1:
        raise ConfigurationError(
            f"backoff parameter 'base' must be > 1 so that waits grow, got {base!r}; "
            "for equal waits use constant(seconds), for a first wait below 1 s use initial="
        )
    _check("max", max)
    first = float(base) if initial is None else _check("initial", initial, positive=True)
    return _Exponential(float(base), float(max), first, _check_jitter(jitter))


def linear(
    start: float = 1, step: float = 1, *, max: float | None = None, jitter: float = 0.0
) -> Backoff:
    """Wait ``start + step * (retry - 1)`` seconds: ``linear(start=2, step=3)`` waits 2, 5, 8, ...

    ``max`` optionally caps every wait; ``jitter`` (0 to 1) randomly shortens waits.
    """
    _check("start", start)
    _check("step", step)
    cap = None if max is None else _check("max", max)
    return _Linear(float(start), float(step), cap, _check_jitter(jitter))


def constant(seconds: float, *, jitter: float = 0.0) -> Backoff:
    """Wait the same number of seconds before every retry: ``constant(5)`` waits 5, 5, 5."""
    return _Constant(_check("seconds", seconds), _check_jitter(jitter))
