"""Polling the store for the signals this process waits for: one read per round for all waits.

Each signal wait has a :class:`Watch`: the ``(run_id, name, index)`` it waits
for and when to read it next. Its delay grows from 20 ms to 1 s after each
read that found nothing, so a fresh wait notices a signal sent by another
process quickly and a long one costs little. One :class:`SignalPoller` per app
and event loop wakes when the first watch is due and reads every due watch
with one :meth:`~durable.stores.base.Store.read_signals` call. Watches due
within half their delay are read in that round too: waits fall into step and
share rounds, so the store sees about one call per second however many runs
wait.

A signal sent through the app in this process asks for a read at once
(:meth:`Watch.read_soon`). One sent by another process is announced by the
store where it can (``Store.wait_for_signal``: LISTEN/NOTIFY, pub/sub): a
task of the poller waits for that and then reads every watch at once; the
polling is the fallback. A wait whose deadline passed asks for one last read
before it times out, so that a signal stored before the deadline is received.
A store that cannot be reached (``StoreUnavailableError``) is read again
later, each wait after its own delay: waits outlast an outage. Any other
store error ends every wait of the round with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
from collections.abc import Awaitable, Callable, Sequence

from durable.errors import StoreUnavailableError

logger = logging.getLogger("durable.signals")

SignalKey = tuple[str, str, int]
ReadSignals = Callable[[Sequence[SignalKey]], Awaitable[dict[SignalKey, str]]]
# Waits up to the given seconds for news of a signal; True when some came.
ListenSignals = Callable[[float], Awaitable[bool]]

POLL_MIN = 0.02
POLL_MAX = 1.0
# How long one wait for news lasts (it is renewed while watches remain), and
# the pause after it failed.
_LISTEN_SPAN = 30.0
_LISTEN_RETRY = 1.0


class LastLook(enum.Enum):
    """The read a wait asks for once its deadline passed, before it times out."""

    NOT_ASKED = "not_asked"
    ASKED = "asked"  # due in the next round
    READING = "reading"  # in the round being read now
    DONE = "done"  # read after the deadline and found nothing: the wait may time out


class Watch:
    """One signal wait: what it waits for, when to read it next, what was read."""

    __slots__ = (
        "_delay",
        "_due",
        "_last_look",
        "_max_pause",
        "_pause",
        "_poller",
        "_wake",
        "error",
        "key",
        "payload",
    )

    def __init__(
        self, poller: SignalPoller, key: SignalKey, wake: asyncio.Event, max_pause: float
    ) -> None:
        self.key = key
        self.payload: str | None = None
        self.error: Exception | None = None
        self._poller = poller
        self._wake = wake
        self._max_pause = max_pause
        self._due = 0.0  # loop time of the next read; 0: at once
        self._pause = 0.0  # the pause that set _due
        self._delay = POLL_MIN  # the pause after the next read that finds nothing
        self._last_look = LastLook.NOT_ASKED

    def read_soon(self) -> None:
        """Read in the next round, which starts at once."""
        self._due = self._pause = 0.0
        self._poller.kick()

    def keep_polled(self) -> None:
        """Restart the poller if its task was cancelled while this wait goes on."""
        self._poller.ensure_running()

    def last_look(self) -> bool:
        """True once a read asked for after the deadline found nothing; asks for it otherwise."""
        if self._last_look is LastLook.NOT_ASKED:
            self._last_look = LastLook.ASKED
            self.read_soon()
        return self._last_look is LastLook.DONE


class SignalPoller:
    """Reads the signals that the watches of one app on one event loop wait for."""

    def __init__(
        self,
        read: ReadSignals,
        loop: asyncio.AbstractEventLoop,
        listen: ListenSignals | None = None,
    ) -> None:
        self.loop = loop
        self._read = read
        self._listen = listen
        self._watches: set[Watch] = set()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._kicked = asyncio.Event()

    def watch(self, key: SignalKey, wake: asyncio.Event, max_pause: float) -> Watch:
        """Start reading ``key``; ``wake`` is set when it arrived, failed or a last look ended."""
        watch = Watch(self, key, wake, max_pause)
        self._watches.add(watch)
        self.ensure_running()
        self.kick()
        return watch

    def discard(self, watch: Watch) -> None:
        """Stop reading for ``watch``; the poller stops with its last watch."""
        self._watches.discard(watch)
        if not self._watches:
            for task in (self._task, self._listener):
                if task is not None:
                    task.cancel()
            self._task = self._listener = None

    def ensure_running(self) -> None:
        """Start the polling task when watches wait for it (again, if it was cancelled)."""
        if not self._watches:
            return
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._poll(), name="durable-signal-poller")

    def _ensure_listening(self) -> None:
        """Start waiting for the store's news of signals, once a read left waits unanswered.

        Not before: a wait whose signal was already stored (a run resumed
        after it was sent) never opens a subscription.
        """
        if not self._watches or self._listen is None:
            return
        if self._listener is None or self._listener.done():
            self._listener = self.loop.create_task(
                self._hear(self._listen), name="durable-signal-listener"
            )

    async def _hear(self, listen: ListenSignals) -> None:
        """Read every watch at once whenever the store tells of a signal sent to the app."""
        me = asyncio.current_task()
        while self._watches and self._listener is me:
            try:
                heard = await listen(_LISTEN_SPAN)
            except Exception as exc:
                logger.debug("waiting for news of signals failed: %r", exc)
                await asyncio.sleep(_LISTEN_RETRY)
                continue
            if heard:
                for w in self._watches:
                    if w._due != math.inf:
                        w._due = w._pause = 0.0
                self.kick()

    def kick(self) -> None:
        # A loop closed with tasks still pending has nobody left to wake.
        if not self.loop.is_closed():
            self._kicked.set()

    async def _poll(self) -> None:
        me = asyncio.current_task()
        # A task replaced by another (stopped, then started again) ends here
        # even if its cancellation got lost in a timeout expiring at once.
        while self._watches and self._task is me:
            now = self.loop.time()
            first = min(w._due for w in self._watches)
            if first > now:
                self._kicked.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(first - now):
                        await self._kicked.wait()
                continue
            await self._round(now)

    async def _round(self, now: float) -> None:
        batch = [w for w in self._watches if w._due - w._pause / 2 <= now]
        for w in batch:
            w._due = math.inf  # being read: read_soon() meanwhile asks for another read
            if w._last_look is LastLook.ASKED:
                w._last_look = LastLook.READING
        read = True
        try:
            found = await self._read(list(dict.fromkeys(w.key for w in batch)))
        except asyncio.CancelledError:
            # Polling stopped mid-read: if it starts again, the batch is read again.
            for w in batch:
                if w._due == math.inf:
                    w._due = 0.0
                if w._last_look is LastLook.READING:
                    w._last_look = LastLook.ASKED
            raise
        except StoreUnavailableError as exc:
            # A wait may last days: an outage of the store is waited out, each
            # wait reading again after its own delay, as if nothing had come.
            logger.warning(
                "signal waits could not read the store (%s); reading again later",
                exc,
                extra={"action": "signal_read_retry"},
            )
            found, read = {}, False
        except Exception as exc:
            for w in batch:
                self._finish(w, None, exc)
            return
        read_at = self.loop.time()
        for w in batch:
            if w not in self._watches:
                continue  # its wait ended meanwhile
            payload = found.get(w.key)
            if payload is not None:
                self._finish(w, payload, None)
                continue
            if w._last_look is LastLook.READING:
                if read:
                    w._last_look = LastLook.DONE
                    w._wake.set()
                else:
                    # A timeout waits for a read that happened.
                    w._last_look = LastLook.ASKED
            if w._due == math.inf:
                w._pause = min(w._delay, w._max_pause)
                w._due = read_at + w._pause
                w._delay = min(w._delay * 1.5, POLL_MAX)
        self._ensure_listening()

    def _finish(self, watch: Watch, payload: str | None, error: Exception | None) -> None:
        if watch in self._watches:
            self._watches.discard(watch)
            watch.payload, watch.error = payload, error
            watch._wake.set()
