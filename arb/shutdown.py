"""Graceful shutdown: on SIGINT/SIGTERM run named steps in order, each with a timeout.

The engine registers its steps in the order they must run: stop scanning, let the executions
in flight finish (their recoveries included), cancel the engine's open orders, close the
connectors, flush and close the journal. Each step gets its own timeout, capped by what is
left of the overall one; a step that fails or times out is logged and the next one still
runs (a stuck cancel must not keep the journal from closing). Steps left when the overall
timeout is spent are skipped. A second signal while shutting down exits the process at once;
the same signal again within ``STOP_REPEAT_S`` of the first is that one delivered twice
(``StopSignals``), not a second.

Usage::

    async with ShutdownManager(timeout_s=15) as shutdown:
        shutdown.add_step("stop scanning", controller.stop_scanning, timeout_s=1)
        shutdown.add_step("cancel open orders", executor.cancel_all, timeout_s=5)
        ...
        await shutdown.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from enum import Enum
from types import TracebackType
from typing import Any, NoReturn

import msgspec

from .output import drain as drain_output, write_without_blocking

log = logging.getLogger(__name__)

StepAction = Callable[[], Awaitable[object]]


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
KILL_SWITCH_ENGAGE, KILL_SWITCH_RELEASE = signal.SIGUSR1, signal.SIGUSR2
_KILL_SWITCH_SIGNALS = (KILL_SWITCH_ENGAGE, KILL_SWITCH_RELEASE)
# How soon after a stop signal the same signal again is that stop delivered twice, not a second one:
# ``timeout`` signals the process and then its process group, a wrapper forwards the Ctrl-C that the
# terminal sent the whole group too.
STOP_REPEAT_S = 0.5
# How long a forced exit waits for the log's handlers to flush (``exit_at_once``).
EXIT_FLUSH_S = 1.0


class StopDelivery(Enum):
    """What a stop signal is, given those received before it (``StopSignals.receive``)."""

    FIRST = "first"
    REPEAT = "repeat"  # the first one delivered again: the same request
    SECOND = "second"  # another request: it forces exit


class StopSignals:
    """The first SIGINT or SIGTERM received and when, to tell a second stop from the first delivered twice.

    The same signal within ``STOP_REPEAT_S`` of the first is that one again; a different signal, or
    the same one later, is a second request. Counted as a second, one ``timeout`` or a forwarding
    wrapper delivered twice forced exit and skipped the graceful shutdown.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._first: tuple[signal.Signals, float] | None = None

    @property
    def first(self) -> signal.Signals | None:
        """The first stop signal received, if any."""
        return None if self._first is None else self._first[0]

    def receive(self, sig: signal.Signals) -> StopDelivery:
        """Note ``sig``; what it is."""
        now = self._clock()
        if self._first is None:
            self._first = (sig, now)
            return StopDelivery.FIRST
        first, at = self._first
        return StopDelivery.REPEAT if sig is first and now - at < STOP_REPEAT_S else StopDelivery.SECOND

    def clear(self) -> None:
        """Forget the signals received."""
        self._first = None


def note_repeated_stop(sig: signal.Signals) -> None:
    """Log a ``StopDelivery.REPEAT`` of ``sig``: an operator who meant it as a second stop learns to send it again."""
    log.warning("%s", _repeated_stop(sig))


def _repeated_stop(sig: signal.Signals) -> str:
    return (f"received {sig.name} again within {STOP_REPEAT_S:.1f} s of the first: the same stop delivered twice, "
            "not a second one (send it again to force exit)")


_held_stop = StopSignals()
_held_kill_switch: list[signal.Signals] = []


def hold_stop_signals() -> None:
    """Remember the first SIGINT or SIGTERM, and the last SIGUSR1 or SIGUSR2 (the kill switch),
    from now until the engine takes the signals over, instead of acting on them (``python -m
    arb`` calls it before loading the engine).

    A container's first process (PID 1) never gets a signal it has no handler for: a stop or a
    kill switch sent while Python loaded the engine and read its configuration was lost, and
    the engine went on to trade (elsewhere SIGUSR1 ended the process). ``ArbitrageController.initialize``
    stops the start-up on the stop held and starts with the kill switch held; a second stop
    exits at once (a start-up hung before it, reading its configuration, say), not the first
    delivered twice (``StopSignals``).
    """
    _held_stop.clear()
    _held_kill_switch.clear()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _hold)
    for sig in _KILL_SWITCH_SIGNALS:
        signal.signal(sig, _hold_kill_switch)


def _hold(signum: int, frame: object) -> None:
    if _held_stop.receive(signal.Signals(signum)) is StopDelivery.SECOND:
        # Nothing was started yet, so nothing is left behind by leaving now.
        write_without_blocking(f"arb: received {signal.Signals(signum).name} again before starting: exiting\n")
        os._exit(1)


def _hold_kill_switch(signum: int, frame: object) -> None:
    _held_kill_switch[:] = [signal.Signals(signum)]  # the operator's last word stands


def take_held_stop_signal() -> signal.Signals | None:
    """The stop signal ``hold_stop_signals`` held, if any, forgetting it."""
    held = _held_stop.first
    _held_stop.clear()
    return held


def take_held_kill_switch_signal() -> signal.Signals | None:
    """The last kill-switch signal ``hold_stop_signals`` held (SIGUSR1 or SIGUSR2), if any, forgetting it."""
    held = _held_kill_switch[0] if _held_kill_switch else None
    _held_kill_switch.clear()
    return held


@contextlib.contextmanager
def signals_given_back() -> Iterator[None]:
    """Put SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 back as they were on leaving (a run handles them
    until its program has reported it): a program that ran the engine in its own process keeps
    its own handling of them."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's alone
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (*_STOP_SIGNALS, *_KILL_SWITCH_SIGNALS)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: installed outside Python, nothing to put back
                signal.signal(sig, handler)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is as Ctrl-C raises KeyboardInterrupt (``release_stop_signals``)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def exit_at_once(code: int) -> NoReturn:
    """Leave the process now (a second stop signal), the log flushed and the queued output
    (``output.drain``) written first: the last lines, "forcing exit" among them, are not lost.
    Neither may hold the exit up for long: a stream whose reader stalled is left as it is."""
    # In a thread of its own: flushing a handler's stream waits on that stream, which this thread
    # may have been writing to (blocked) when the signal came.
    flushing = threading.Thread(target=logging.shutdown, name="arb exit log flush", daemon=True)
    flushing.start()
    flushing.join(EXIT_FLUSH_S)
    drain_output()
    os._exit(code)


def release_stop_signals() -> signal.Signals | None:
    """Give SIGINT its default handling and make SIGTERM raise ``Terminated``; the stop signal held
    meanwhile, if any. SIGTERM's default (ending the process) never comes to a container's first
    process, which would then run on until killed. The kill-switch signals get their default
    handling back (only a run has a kill switch)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    for sig in _KILL_SWITCH_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    take_held_kill_switch_signal()
    return take_held_stop_signal()


def _stop_exception(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def stop_signals_cancel(task: asyncio.Task[Any]) -> Iterator[None]:
    """While the body runs ``task``'s loop, SIGINT or SIGTERM cancels ``task``, and leaving the body
    raises ``KeyboardInterrupt`` (SIGINT) or ``Terminated`` (SIGTERM), as the signal itself would
    after ``release_stop_signals``; a second signal (``StopSignals``) raises at once. Raised by the signal, the
    exception would land in whichever of the loop's tasks was running, where nothing awaits it.
    The handlers are put back after; outside the main thread the signals keep their handling."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = task.get_loop()
    received = StopSignals()

    def on_signal(signum: int, frame: object) -> None:
        delivery = received.receive(signal.Signals(signum))
        if delivery is StopDelivery.SECOND:
            raise _stop_exception(signum)
        if delivery is StopDelivery.REPEAT:  # not logged: this handler may run inside a write to a stalled stderr
            write_without_blocking(f"arb: {_repeated_stop(signal.Signals(signum))}\n")
            return
        loop.call_soon_threadsafe(task.cancel)

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    try:
        yield
    except asyncio.CancelledError:
        if received.first is None:
            raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: not set from Python
    if received.first is not None:
        raise _stop_exception(received.first)


class StepStatus(str, Enum):
    """How a shutdown step ended."""

    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"  # the overall timeout was spent before it could start


class StepOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One step's result."""

    name: str
    status: StepStatus
    elapsed_ns: int
    error: str | None = None


class _Step(msgspec.Struct, frozen=True):
    name: str
    action: StepAction
    timeout_s: float


class ShutdownManager:
    """Runs the registered shutdown steps once, on a signal or on ``request_shutdown``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        timeout_s: float = 30.0,
        signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
        force_exit: Callable[[int], NoReturn] = exit_at_once,
        force_exit_code: int = 1,
        keep_signals: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``keep_signals``: once the steps have run (``uninstall``), go on handling the signals rather
        than give them back to their default handling (``on_signal_after_shutdown``): for a program
        that ends with its engine, which a default SIGTERM would kill before it reported. ``clock``
        (seconds) times a signal's repeat (``StopSignals``)."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s}: must be positive")
        self._loop = loop
        self.timeout_s = timeout_s
        self._signals = signals
        self._installed: list[signal.Signals] = []
        self._keep_signals = keep_signals
        self._force_exit = force_exit
        self._force_exit_code = force_exit_code
        self._steps: list[_Step] = []
        self._reason: str | None = None
        self._stops = StopSignals(clock)  # the signals received (a second one forces exit)
        self._task: asyncio.Task[list[StepOutcome]] | None = None
        self._requested: asyncio.Event | None = None

    @property
    def keeps_signals(self) -> bool:
        """Whether the program ends with its engine (``keep_signals``): signals the run handled are
        still handled after it, not given back to defaults that would end the process unreported."""
        return self._keep_signals

    @property
    def is_shutting_down(self) -> bool:
        """Whether shutdown was requested (by a signal or a call)."""
        return self._reason is not None

    @property
    def reason(self) -> str | None:
        """Why shutdown was requested."""
        return self._reason

    @property
    def steps(self) -> list[tuple[str, float]]:
        """The registered steps in order, ``(name, timeout_s)`` each."""
        return [(step.name, step.timeout_s) for step in self._steps]

    @property
    def outcomes(self) -> list[StepOutcome]:
        """The steps' results once shutdown has finished, else empty."""
        task = self._task
        return task.result() if task is not None and task.done() and not task.cancelled() else []

    @property
    def exit_code(self) -> int:
        """0 when every step ended OK, 1 otherwise (for the process exit status)."""
        done = self.outcomes
        return 0 if done and all(o.status is StepStatus.OK for o in done) else 1

    def add_step(self, name: str, action: StepAction, *, timeout_s: float) -> None:
        """Register a step; steps run in registration order."""
        if timeout_s <= 0:
            raise ValueError(f"shutdown step {name!r}: timeout_s={timeout_s}: must be positive")
        if self._task is not None:
            raise RuntimeError(f"shutdown step {name!r}: shutdown already started")
        self._steps.append(_Step(name, action, timeout_s))

    def install(self) -> None:
        """Handle the signals on the event loop (call from a coroutine on that loop). Where the loop
        takes no signal handlers (not the main thread, no POSIX signals) they keep their handling,
        and only ``request_shutdown`` starts the shutdown."""
        loop = self._loop = self._loop or asyncio.get_running_loop()
        for sig in self._signals:
            try:
                loop.add_signal_handler(sig, self.on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            self._installed.append(sig)

    def uninstall(self) -> None:
        """Give the signals back to their default handling, or with ``keep_signals`` to
        ``on_signal_after_shutdown``. The event loop gives SIGTERM its default (ending the process)
        and SIGINT ``KeyboardInterrupt``, not the handlers it took them from."""
        if self._loop is not None:
            for sig in self._installed:
                self._loop.remove_signal_handler(sig)
                if self._keep_signals:
                    signal.signal(sig, self.on_signal_after_shutdown)
        self._installed.clear()

    def request_shutdown(self, reason: str) -> None:
        """Start the shutdown steps (once; later requests are ignored)."""
        if self._reason is not None:
            log.info("shutdown already in progress (%s); ignoring: %s", self._reason, reason)
            return
        self._reason = reason
        log.warning("shutting down: %s", reason)
        loop = self._loop = self._loop or asyncio.get_running_loop()
        self._task = loop.create_task(self._run_steps(), name="arb-shutdown")
        if self._requested is not None:
            self._requested.set()

    async def wait(self) -> list[StepOutcome]:
        """Wait until shutdown is requested and its steps have run; returns their outcomes."""
        if self._task is None:
            if self._requested is None:
                self._requested = asyncio.Event()
            await self._requested.wait()
        if self._task is None:  # pragma: no cover - set before the event
            raise RuntimeError("shutdown requested without a shutdown task")
        return await asyncio.shield(self._task)

    async def __aenter__(self) -> ShutdownManager:
        self.install()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._task is None:
                self.request_shutdown("leaving the engine" if exc is None else f"engine stopped by {exc!r}")
            await self.wait()
        finally:
            self.uninstall()

    def on_signal(self, sig: signal.Signals) -> None:
        """What a handled SIGINT/SIGTERM does: the first asks for the shutdown, the next forces exit
        (not the first delivered twice: ``StopSignals``)."""
        # The first signal asks for a graceful shutdown, also when one is already running for
        # another reason (a run's duration, a failed task); only a second one forces exit.
        delivery = self._stops.receive(sig)
        if delivery is StopDelivery.REPEAT:
            note_repeated_stop(sig)
            return
        if delivery is StopDelivery.FIRST:
            if self._reason is None:
                self.request_shutdown(f"received {sig.name}")
            else:
                log.warning("received %s while shutting down (%s): the shutdown goes on; another signal forces exit",
                            sig.name, self._reason)
            return
        log.critical("received %s while shutting down (%s): forcing exit", sig.name, self._reason)
        self._force_exit(self._force_exit_code)

    def on_signal_after_shutdown(self, signum: int, frame: object) -> None:
        """What SIGINT/SIGTERM does once the loop's handlers are removed (``keep_signals``): the
        program is ending, so the first is noted (on stderr, if it takes it at once) and the next
        forces exit, as while shutting down."""
        sig = signal.Signals(signum)
        delivery = self._stops.receive(sig)
        # Said straight to stderr, never waiting on it: the program may be blocked writing there to
        # a reader that stalled (its summary, say), and a log line would block this handler too.
        if delivery is StopDelivery.REPEAT:
            write_without_blocking(f"arb: {_repeated_stop(sig)}\n")
            return
        if delivery is StopDelivery.FIRST:
            write_without_blocking(f"arb: received {sig.name} after the shutdown ({self._reason}): ending as it was; "
                                   "another signal forces exit\n")
            return
        write_without_blocking(f"arb: received {sig.name} after the shutdown ({self._reason}): forcing exit\n")
        self._force_exit(self._force_exit_code)

    async def _run_steps(self) -> list[StepOutcome]:
        outcomes: list[StepOutcome] = []
        deadline = time.monotonic() + self.timeout_s
        for step in self._steps:
            left = deadline - time.monotonic()
            if left <= 0:
                outcome = StepOutcome(name=step.name, status=StepStatus.SKIPPED, elapsed_ns=0)
                log.error("shutdown step %r skipped: overall timeout of %.1f s spent", step.name, self.timeout_s)
                outcomes.append(outcome)
                continue
            outcomes.append(await self._run_step(step, min(step.timeout_s, left)))
        failed = [o.name for o in outcomes if o.status is not StepStatus.OK]
        if failed:
            log.error("shutdown finished with problems in: %s", ", ".join(failed))
        else:
            log.info("shutdown finished: %d steps OK", len(outcomes))
        return outcomes

    async def _run_step(self, step: _Step, timeout_s: float) -> StepOutcome:
        start = time.monotonic_ns()
        log.info("shutdown step %r started (timeout %.1f s)", step.name, timeout_s)
        try:
            await asyncio.wait_for(step.action(), timeout_s)
        except TimeoutError:
            elapsed = time.monotonic_ns() - start
            log.error("shutdown step %r timed out after %.1f s", step.name, timeout_s)
            return StepOutcome(name=step.name, status=StepStatus.TIMEOUT, elapsed_ns=elapsed)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            elapsed = time.monotonic_ns() - start
            log.error("shutdown step %r was cancelled", step.name)
            return StepOutcome(name=step.name, status=StepStatus.ERROR, elapsed_ns=elapsed, error="cancelled")
        except Exception as exc:
            elapsed = time.monotonic_ns() - start
            log.error("shutdown step %r failed: %r", step.name, exc, exc_info=exc)
            return StepOutcome(name=step.name, status=StepStatus.ERROR, elapsed_ns=elapsed, error=repr(exc))
        elapsed = time.monotonic_ns() - start
        log.info("shutdown step %r done in %.3f s", step.name, elapsed / 1e9)
        return StepOutcome(name=step.name, status=StepStatus.OK, elapsed_ns=elapsed)
