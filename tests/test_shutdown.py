"""ShutdownManager: ordered steps with timeouts, signals in a real process, a second signal forces exit."""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import IO, Any, NoReturn

import pytest

from arb.shutdown import ShutdownManager, StepStatus

CHILD = Path(__file__).with_name("shutdown_child.py")
STEPS = ["stop scanning", "cancel open orders", "hand residuals to recovery", "close connectors", "close journal"]


def start(mode: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), mode], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    return child


def lines(stream: IO[str] | None) -> list[str]:
    assert stream is not None
    return stream.read().splitlines()


def test_sigterm_runs_the_steps_in_order_and_exits_0() -> None:
    child = start("ok")
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=10) == 0
    assert lines(child.stdout) == STEPS
    log = "\n".join(lines(child.stderr))
    assert "shutting down: received SIGTERM" in log and "shutdown finished: 5 steps OK" in log


def test_hanging_step_is_timed_out_and_the_rest_still_run() -> None:
    child = start("hang")
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 1
    assert lines(child.stdout) == STEPS
    log = "\n".join(lines(child.stderr))
    assert "shutdown step 'cancel open orders' timed out after 0.3 s" in log
    assert "shutdown finished with problems in: cancel open orders" in log


def test_second_signal_forces_exit() -> None:
    child = start("force")
    child.send_signal(signal.SIGTERM)
    assert child.stdout is not None and child.stdout.readline() == "stop scanning\n"
    child.send_signal(signal.SIGINT)  # another signal: the same one at once would be the first delivered twice
    assert child.wait(timeout=10) == 3
    assert "received SIGINT while shutting down (received SIGTERM): forcing exit" in "\n".join(lines(child.stderr))


@pytest.mark.parametrize(
    ("second", "after_s", "forced"),
    [(signal.SIGTERM, 0.1, False), (signal.SIGTERM, 0.6, True), (signal.SIGINT, 0.1, True)],
    ids=["same at once", "same later", "other at once"],
)
def test_the_same_signal_again_at_once_is_the_first_delivered_twice_not_a_second_stop(
    second: signal.Signals, after_s: float, forced: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """``timeout`` signals the process and then its process group: one stop, delivered twice
    within moments, forced exit and left the executions in flight with orders of unknown outcome."""
    now = [100.0]
    forced_codes: list[int] = []

    def force_exit(code: int) -> NoReturn:
        forced_codes.append(code)
        raise SystemExit(code)

    async def main() -> None:
        shutdown = ShutdownManager(signals=(), force_exit=force_exit, clock=lambda: now[0])
        shutdown.on_signal(signal.SIGTERM)
        now[0] += after_s
        with contextlib.suppress(SystemExit):
            shutdown.on_signal(second)
        await shutdown.wait()

    asyncio.run(main())
    assert forced_codes == ([1] if forced else [])
    assert ("the same stop delivered twice" in caplog.text) is not forced


def test_a_stop_held_before_the_start_up_delivered_twice_is_held_not_an_exit() -> None:
    script = (
        "import os, signal\n"
        "from arb.shutdown import hold_stop_signals, take_held_stop_signal\n"
        "hold_stop_signals()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "os.kill(os.getpid(), signal.SIGTERM)  # the same stop again, as ``timeout`` sends it to the group\n"
        "print('held:', take_held_stop_signal().name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "held: SIGTERM\n"), result.stderr


def test_one_signal_during_a_shutdown_not_begun_by_a_signal_does_not_force_exit() -> None:
    """The run's duration is over and the shutdown is in its first step when ``docker stop`` sends
    one SIGTERM: the shutdown goes on; a second signal forces exit."""
    child = start("requested")
    assert child.stdout is not None and child.stdout.readline() == "stop scanning\n"
    child.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.5)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=10) == 3
    log = "\n".join(lines(child.stderr))
    assert "received SIGTERM while shutting down (run over): the shutdown goes on" in log
    assert "received SIGINT while shutting down (run over): forcing exit" in log


def test_kept_signals_after_the_steps_note_the_first_and_force_exit_on_the_second(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Removing the loop's handlers gave SIGTERM its default: a program ending with its engine was
    killed while it wrote its summary and report. Kept, they go on as while shutting down."""
    forced: list[int] = []

    def force_exit(code: int) -> NoReturn:
        forced.append(code)
        raise SystemExit(code)

    async def main() -> None:
        async with ShutdownManager(force_exit=force_exit, keep_signals=True) as shutdown:
            shutdown.request_shutdown("duration elapsed")

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(main())
        signal.raise_signal(signal.SIGTERM)  # with its default, the end of pytest
        assert forced == []
        assert "received SIGTERM after the shutdown (duration elapsed): ending as it was" in capfd.readouterr().err
        with pytest.raises(SystemExit):
            signal.raise_signal(signal.SIGINT)
        assert forced == [1]
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


STALLED_AFTER_THE_SHUTDOWN = """
import asyncio, logging, sys
from arb.shutdown import ShutdownManager
logging.basicConfig(stream=sys.stderr, level=logging.ERROR)  # a handler to flush; the pipe filled by the summary alone

async def main():
    async with ShutdownManager(keep_signals=True) as shutdown:
        shutdown.request_shutdown("run over")

asyncio.run(main())
print("writing", flush=True)
print("summary " * 50_000, file=sys.stderr, flush=True)
"""
STALLED_BEFORE_THE_START = """
import sys
from arb.shutdown import hold_stop_signals
hold_stop_signals()
print("writing", flush=True)
print("configuration " * 50_000, file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize("script", [STALLED_AFTER_THE_SHUTDOWN, STALLED_BEFORE_THE_START], ids=["after", "before"])
def test_a_second_signal_ends_a_process_blocked_on_a_stderr_nobody_reads(script: str) -> None:
    """A paused pager, a log shipper pushing back: the process blocked writing its summary (or its
    configuration), and the signals' own lines, written to that same stderr, blocked them too."""
    read_fd, write_fd = os.pipe()  # stderr, never read
    try:
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=write_fd, text=True)
        os.close(write_fd)
        try:
            assert child.stdout is not None and child.stdout.readline() == "writing\n"
            capacity, queued = fcntl.fcntl(read_fd, fcntl.F_GETPIPE_SZ), array.array("i", [0])
            deadline = time.monotonic() + 30
            while fcntl.ioctl(read_fd, termios.FIONREAD, queued) == 0 and queued[0] < capacity:
                assert time.monotonic() < deadline, "the pipe never filled"  # the child blocks on it once full
                time.sleep(0.01)
            child.send_signal(signal.SIGTERM)
            child.send_signal(signal.SIGINT)
            assert child.wait(timeout=30) == 1
        finally:
            child.kill()
            child.wait()
    finally:
        os.close(read_fd)


def test_signals_not_kept_are_given_back_to_their_defaults() -> None:
    async def main() -> None:
        async with ShutdownManager() as shutdown:
            shutdown.request_shutdown("done")

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(main())
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_request_runs_steps_once_and_reports_outcomes() -> None:
    order: list[str] = []

    async def ok() -> None:
        order.append("ok")

    async def broken() -> None:
        order.append("broken")
        raise OSError("socket already closed")

    async def main() -> ShutdownManager:
        shutdown = ShutdownManager(signals=())
        shutdown.add_step("first", ok, timeout_s=1)
        shutdown.add_step("second", broken, timeout_s=1)
        shutdown.add_step("third", ok, timeout_s=1)
        assert not shutdown.is_shutting_down
        shutdown.request_shutdown("test")
        shutdown.request_shutdown("again")  # ignored
        with pytest.raises(RuntimeError, match="already started"):
            shutdown.add_step("late", ok, timeout_s=1)
        await shutdown.wait()
        return shutdown

    shutdown = asyncio.run(main())
    assert order == ["ok", "broken", "ok"]
    assert [(o.name, o.status) for o in shutdown.outcomes] == [
        ("first", StepStatus.OK),
        ("second", StepStatus.ERROR),
        ("third", StepStatus.OK),
    ]
    assert shutdown.outcomes[1].error == "OSError('socket already closed')"
    assert (shutdown.reason, shutdown.exit_code) == ("test", 1)


def test_overall_timeout_skips_the_remaining_steps() -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    async def main() -> list[StepStatus]:
        shutdown = ShutdownManager(timeout_s=0.2, signals=())
        shutdown.add_step("slow", slow, timeout_s=5)  # capped by the 0.2 s left overall
        shutdown.add_step("after", slow, timeout_s=5)
        shutdown.request_shutdown("test")
        return [o.status for o in await shutdown.wait()]

    assert asyncio.run(main()) == [StepStatus.TIMEOUT, StepStatus.SKIPPED]


def test_context_manager_shuts_down_when_the_body_raises() -> None:
    ran: list[str] = []

    async def close() -> None:
        ran.append("close")

    async def main() -> None:
        async with ShutdownManager(signals=()) as shutdown:
            shutdown.add_step("close", close, timeout_s=1)
            raise ConnectionError("venue gone")

    with pytest.raises(ConnectionError):
        asyncio.run(main())
    assert ran == ["close"]


def test_a_loop_outside_the_main_thread_shuts_down_on_request() -> None:
    """An engine embedded in another program's worker thread: its loop takes no signal handlers,
    and installing them must not fail the run before its steps are registered to close it."""
    import threading

    ran: list[str] = []

    async def step() -> None:
        ran.append("closed")

    async def main() -> None:
        async with ShutdownManager() as shutdown:
            shutdown.add_step("close", step, timeout_s=1)
            shutdown.request_shutdown("embedded run over")
            await shutdown.wait()

    errors: list[BaseException] = []
    thread = threading.Thread(target=lambda: _run_catching(main, errors))
    thread.start()
    thread.join(10)
    assert errors == [] and ran == ["closed"]


def _run_catching(main: Any, errors: list[BaseException]) -> None:
    try:
        asyncio.run(main())
    except BaseException as exc:  # the test reads it in the main thread
        errors.append(exc)
