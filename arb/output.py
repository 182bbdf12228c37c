"""Off-loop output: a run's stdout and stderr written by a thread each, never by the event loop.

A terminal or pipe whose reader stops reading (a paused pager, a log shipper pushing back,
Ctrl-S on a terminal) blocks whoever writes to it once its buffer is full. Written from the
event loop, a log line, a JSON event or a status line then stalled the whole engine: answers
to orders in flight, the books, the shutdown's timer. While ``off_loop_output`` is entered,
``sys.stdout`` and ``sys.stderr`` (and the logging handlers writing to them) write into a
bounded queue per stream, which a writer thread drains onto the stream's file descriptor.
What does not fit in the queue is dropped, whole lines at a time, and counted; the count is
logged once the stream takes lines again. ``drain`` lets a process about to ``os._exit`` write
out what is queued first; ``write_without_blocking`` is for what a signal handler, or a process
about to leave, says on stderr when that stream may be the one stalled.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO, cast

log = logging.getLogger(__name__)

QUEUED_BYTES = 4_000_000  # per stream: what a reader that stalls may leave queued (some 20,000 log lines)
DRAIN_TIMEOUT_S = 5.0  # at the end, how long the queued lines may take to reach a reader still reading
_BATCH_BYTES = 65_536  # the most one write to the descriptor carries
_STDERR = 2

# One lock per open file: stdout and stderr on the same pipe (``2>&1``) must not interleave their
# writes, which larger than the pipe's atomic size may mix when its reader is slow.
_file_locks: dict[tuple[int, int], threading.Lock] = {}
_file_locks_guard = threading.Lock()
_active: list[QueuedStream] = []  # open streams, for ``drain``


class QueuedStream:
    """A text stream whose writes go to a queue that a thread drains onto ``target``'s descriptor.

    Thread-safe; ``isatty``, ``fileno``, ``encoding`` and ``errors`` are the target's. Once
    ``close``d, writes go straight to the target again.
    """

    def __init__(self, target: TextIO, max_bytes: int = QUEUED_BYTES) -> None:
        self.target = target
        self.dropped = 0  # lines (or flushed parts of one) the full queue did not take
        self._max_bytes = max_bytes
        # Of text queued and written so far: the first counted by writers (under ``_lock``), the second by
        # the writer thread alone, which takes no lock a writer holds (a signal handler waiting on it
        # from inside a write would wait out its whole timeout).
        self._enqueued_bytes = 0
        self._written_bytes = 0
        # Bounded by ``_max_bytes``. A SimpleQueue: its ``put`` may be re-entered by a signal handler's
        # write that interrupts one (a Queue's lock is not reentrant: that deadlocked). An Event
        # marks how far ``wait_written`` waits.
        self._queue: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        self._pending: list[str] = []  # the line being written, queued at its end or a flush
        self._closed = False
        self._broken: Exception | None = None  # the error that stopped the writer
        # Writes come from the loop and the live view's thread, and from a signal handler that may
        # run inside one of them (``write_without_blocking``): reentrant, lest that deadlock.
        self._lock = threading.RLock()
        try:
            self._fd: int | None = target.fileno()
        except (OSError, ValueError, AttributeError):
            self._fd = None  # not a file (a test's capture): its own ``write``, from the writer thread
        self._file_lock = _file_lock(self._fd)
        # Never a strict encoding here: one character the terminal cannot show would stop the writer.
        self._errors = target.errors if target.errors not in (None, "strict") else "backslashreplace"
        target.flush()  # what it buffered goes before anything queued
        self._name = str(getattr(target, "name", "output"))
        self._thread = threading.Thread(target=self._drain, name=f"arb output {self._name}", daemon=True)
        self._thread.start()
        _active.append(self)

    @property
    def encoding(self) -> str:
        return self.target.encoding

    @property
    def errors(self) -> str | None:
        return self.target.errors

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self._closed:
            return self.target.write(text)
        if self._broken is not None:
            raise OSError(f"output closed: {self._broken}")
        with self._lock:
            self._pending.append(text)
            if "\n" in text:
                self._enqueue()
        return len(text)

    def flush(self) -> None:
        """Queue what was written since the last line's end (nothing waits for the writer)."""
        if self._closed:
            self.target.flush()
            return
        with self._lock:
            if self._pending:
                self._enqueue()

    def _enqueue(self) -> None:
        """Queue the pending writes as one, or drop them whole (under ``_lock``): lines are queued
        whole, so a line is written whole or not at all (a JSON line cut short would run into the next)."""
        pending, self._pending = self._pending, []  # at once: a signal handler's write may come in between
        text = "".join(pending)
        if self._enqueued_bytes - self._written_bytes + len(text) > self._max_bytes:
            self.dropped += 1
        else:
            self._enqueued_bytes += len(text)
            self._queue.put_nowait(text)

    def wait_written(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for everything queued so far to be written; whether it was."""
        self.flush()
        if self._closed or not self._thread.is_alive():
            return self._broken is None
        written = threading.Event()
        self._queue.put(written)
        deadline = time.monotonic() + timeout_s
        while not written.wait(0.005):
            if not self._thread.is_alive():
                break
            if time.monotonic() >= deadline:
                return False
        return self._broken is None

    def close(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Let the writer write what is queued, for up to ``timeout_s``; later writes go straight to
        the target. Whether everything queued was written."""
        if self._closed:
            return True
        self.flush()
        self._queue.put_nowait(None)
        self._thread.join(timeout_s)
        self._closed = True
        with contextlib.suppress(ValueError):
            _active.remove(self)
        return not self._thread.is_alive() and self._broken is None

    def _drain(self) -> None:
        reported = 0
        while True:
            parts = [self._queue.get()]
            texts = [part for part in parts if isinstance(part, str)]
            size = sum(map(len, texts))
            with contextlib.suppress(queue.Empty):
                while parts[-1] is not None and size < _BATCH_BYTES:
                    part = self._queue.get_nowait()
                    parts.append(part)
                    if isinstance(part, str):
                        texts.append(part)
                        size += len(part)
            done = parts[-1] is None
            text = "".join(texts)
            try:
                self._write(text)
            except (OSError, ValueError) as exc:  # the reader went away, or the descriptor closed
                self._broken = exc
                return
            finally:
                self._written_bytes += len(text)
                for part in parts:
                    if isinstance(part, threading.Event):
                        part.set()
            dropped = self.dropped
            if dropped > reported:
                log.warning("%s: %d lines dropped while it was not read fast enough", self._name, dropped - reported)
                reported = dropped
            if done:
                return

    def _write(self, text: str) -> None:
        if self._fd is None:
            self.target.write(text)
            self.target.flush()
            return
        data = memoryview(text.encode(self.target.encoding or "utf-8", self._errors))
        with self._file_lock:
            while data:
                # A blocked ``os.write`` holds no lock of the target's: a process leaving with this
                # thread stuck on a reader that never reads does not deadlock on the stream's buffer.
                data = data[os.write(self._fd, data):]


def _file_lock(fd: int | None) -> threading.Lock:
    """The lock of the file ``fd`` is open on (its own lock when it cannot be told)."""
    try:
        if fd is None:
            raise OSError("no descriptor")
        stat = os.fstat(fd)
    except OSError:
        return threading.Lock()
    with _file_locks_guard:
        return _file_locks.setdefault((stat.st_dev, stat.st_ino), threading.Lock())


def drain(timeout_s: float = 1.0) -> None:
    """Before ``os._exit``: give the open queued streams up to ``timeout_s`` in all to write what
    they hold (the last log lines, "forcing exit" among them); a no-op when none is open."""
    deadline = time.monotonic() + timeout_s
    for stream in list(_active):
        stream.wait_written(max(0.0, deadline - time.monotonic()))


def write_without_blocking(text: str) -> bool:
    """Write ``text`` to stderr without waiting on it: into its queue while ``off_loop_output`` runs,
    else straight to its descriptor if that takes it at once; dropped otherwise. Whether it was
    written or queued. A signal handler may run inside a write blocked on a reader that stalled,
    and a write of its own there blocked it for good: Ctrl-C and SIGTERM could no longer end the process."""
    queued = sys.stderr
    if isinstance(queued, QueuedStream) and queued in _active:
        try:
            queued.write(text)
        except OSError:  # its reader went away
            return False
        return True
    lock = _file_lock(_STDERR)
    if not lock.acquire(blocking=False):  # a writer thread is writing (or stuck writing) a line there
        return False
    try:
        if not select.select([], [_STDERR], [], 0)[1]:
            return False
        data = text.encode(errors="backslashreplace")
        return os.write(_STDERR, data) == len(data)
    except (OSError, ValueError):  # closed, or the reader went away
        return False
    finally:
        lock.release()


@contextlib.contextmanager
def off_loop_output() -> Iterator[tuple[QueuedStream | None, QueuedStream | None]]:
    """Put ``sys.stdout`` and ``sys.stderr`` behind writer threads (``QueuedStream``) while the body
    runs, with every logging handler writing to them moved too; yields the queued (stdout,
    stderr), None for a stream the process lacks. On exit the queues are drained
    (``DRAIN_TIMEOUT_S`` each) and the streams restored."""
    real = (sys.stdout, sys.stderr)
    queued = tuple(QueuedStream(stream) if stream is not None else None for stream in real)
    moved = _point_handlers(dict(zip(real, queued)))
    stdout, stderr = queued
    if stdout is not None:
        sys.stdout = cast(TextIO, stdout)
    if stderr is not None:
        sys.stderr = cast(TextIO, stderr)
    try:
        yield stdout, stderr
    finally:
        sys.stdout, sys.stderr = real
        for handler, stream in moved:
            handler.setStream(stream)
        for name, queued_stream in zip(("stdout", "stderr"), queued):
            if queued_stream is not None and not queued_stream.close():
                # Not logged: the stream stalled may be stderr (``2>&1`` into a paused pager, say).
                write_without_blocking(f"arb: {name}: not every line of the run reached its reader\n")


def _point_handlers(
    streams: dict[TextIO | None, QueuedStream | None],
) -> list[tuple[logging.StreamHandler[TextIO], TextIO]]:
    """Point every logging handler that writes to a real stream at its queued stream; the handlers
    moved, with the stream each wrote to."""
    moved = []
    loggers = [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                       if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                target = streams.get(handler.stream)
                if target is not None:
                    moved.append((handler, handler.stream))
                    handler.setStream(cast(TextIO, target))
    return moved
