"""arb.output: a run's output written off the event loop; a reader that stalls drops lines, whole."""

from __future__ import annotations

import fcntl
import io
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from arb.output import QueuedStream, off_loop_output

F_SETPIPE_SZ = 1031  # Linux: a pipe's capacity


def small_pipe() -> tuple[int, io.TextIOWrapper]:
    """A pipe holding one page, with a text stream on its write end."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)
    return read_fd, io.TextIOWrapper(os.fdopen(write_fd, "wb"), encoding="utf-8", line_buffering=True)


def read_all(read_fd: int, into: bytearray) -> threading.Thread:
    def reading() -> None:
        while chunk := os.read(read_fd, 65536):
            into.extend(chunk)

    thread = threading.Thread(target=reading, daemon=True)
    thread.start()
    return thread


def test_writes_to_a_reader_that_stalls_never_block_and_drop_whole_lines() -> None:
    """Written directly, the 4 KiB pipe's writer would block at its 40th line until the reader read."""
    read_fd, target = small_pipe()
    stream = QueuedStream(target, max_bytes=50 * 91)
    done = threading.Event()

    def writing() -> None:
        for n in range(2_000):
            stream.write(f"line {n:04d} ")
            stream.write("x" * 80)
            stream.write("\n")
        done.set()

    writer = threading.Thread(target=writing, daemon=True)
    writer.start()
    writer.join(60)
    assert done.is_set(), "a write blocked on the stalled reader"
    assert stream.dropped > 0
    received = bytearray()
    reader = read_all(read_fd, received)
    assert stream.close()
    target.close()
    reader.join(30)
    lines = received.decode().splitlines()
    assert lines and all(len(line) == 90 and line.startswith("line ") and line.endswith("x") for line in lines)
    numbers = [int(line[5:9]) for line in lines]
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert len(lines) + stream.dropped == 2_000  # each line written whole or dropped whole


def test_what_is_written_is_waited_for_from_inside_a_write() -> None:
    """A forced exit from a signal handler waits for the queued lines ("forcing exit" among them); the
    handler may run inside a write, holding the stream's lock, which the writer thread took after
    each batch: it waited out its whole timeout and the last lines were lost."""
    read_fd, target = small_pipe()
    received = bytearray()
    reader = read_all(read_fd, received)
    stream = QueuedStream(target)
    with stream._lock:  # a write under way on this thread, as a signal handler interrupting it finds it
        stream.write("forcing exit\n")
        assert stream.wait_written(5.0)
    assert stream.close()
    target.close()
    reader.join(30)
    assert received == b"forcing exit\n"


def test_a_closed_stream_writes_straight_through_and_a_broken_one_raises() -> None:
    read_fd, target = small_pipe()
    stream = QueuedStream(target)
    stream.write("queued\n")
    assert stream.close()
    stream.write("direct\n")
    stream.flush()
    target.close()
    received = bytearray()
    read_all(read_fd, received).join(30)
    assert received.decode() == "queued\ndirect\n"

    read_fd, target = small_pipe()
    os.close(read_fd)  # the reader went away
    broken = QueuedStream(target)
    broken.write("lost\n")
    assert not broken.close()
    with pytest.raises(OSError):
        broken.write("after\n")


def test_stdout_and_stderr_on_one_pipe_never_mix_their_lines() -> None:
    """``2>&1`` to a slow reader: each writer's batches are larger than the pipe writes atomically."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)
    streams = [
        QueuedStream(io.TextIOWrapper(os.fdopen(os.dup(write_fd), "wb"), encoding="utf-8")) for _ in range(2)
    ]
    os.close(write_fd)
    for n in range(3_000):
        for tag, stream in zip("oe", streams):
            stream.write(f"{tag}{n:05d} " + tag * 200 + "\n")
    received = bytearray()

    def slow_reading() -> None:
        while chunk := os.read(read_fd, 1000):
            received.extend(chunk)
            time.sleep(0.0005)

    reader = threading.Thread(target=slow_reading, daemon=True)
    reader.start()
    for stream in streams:
        assert stream.close(60)
        stream.target.close()
    reader.join(60)
    lines = received.decode().splitlines()
    assert len(lines) == 6_000
    assert all(line == f"{line[0]}{line[1:6]} " + line[0] * 200 for line in lines)


def test_the_queue_is_bounded_by_bytes_and_a_forced_exit_writes_what_it_holds(tmp_path: Path) -> None:
    """A live view's frames are some 9 KB each: bounded by count, a paused terminal held 180 MB.
    And a forced exit (a second Ctrl-C) left its last lines, "forcing exit" included, unwritten."""
    read_fd, target = small_pipe()
    stream = QueuedStream(target, max_bytes=100_000)
    frame = "f" * 9_000 + "\n"
    for _ in range(1_000):
        stream.write(frame)
    assert stream.dropped >= 1_000 - 100_000 // len(frame) - 1  # the pipe took a page, the queue ~11 frames
    os.close(read_fd)
    stream.close(5)

    script = (
        "import logging, os, sys\n"
        "from arb.output import drain, off_loop_output\n"
        "logging.basicConfig(stream=sys.stderr, format='%(message)s', level=logging.INFO)\n"
        "with off_loop_output():\n"
        "    for n in range(200):\n"
        "        logging.info('line %d', n)\n"
        "    logging.critical('forcing exit')\n"
        "    logging.shutdown()\n"
        "    drain()\n"
        "    os._exit(1)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"line {n}" for n in range(200)] + ["forcing exit"]


def test_a_character_the_output_cannot_encode_is_escaped_not_the_end_of_it() -> None:
    read_fd, write_fd = os.pipe()
    target = io.TextIOWrapper(os.fdopen(write_fd, "wb"), encoding="ascii", errors="strict")
    stream = QueuedStream(target)
    stream.write("price 60000 \u2026\n")
    stream.write("after\n")
    assert stream.close()
    target.close()
    received = bytearray()
    read_all(read_fd, received).join(30)
    assert received.decode() == "price 60000 \\u2026\nafter\n"


def test_off_loop_output_moves_the_standard_streams_and_their_handlers_and_puts_them_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    handler = logging.StreamHandler(err)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with off_loop_output() as (stdout, stderr):
            assert sys.stdout is stdout and sys.stderr is stderr and handler.stream is stderr
            print("to stdout")
            logging.getLogger("arb.test").warning("to stderr")
        assert sys.stdout is out and sys.stderr is err and handler.stream is err
    finally:
        root.removeHandler(handler)
    assert out.getvalue() == "to stdout\n" and "to stderr" in err.getvalue()


def test_a_headless_run_trades_on_while_its_stdout_is_not_read(tmp_path: Path) -> None:
    """JSON events, status lines and logs were written from the event loop: a stdout pipe nobody
    read stalled the engine once full, past its --duration, until the reader read again."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, F_SETPIPE_SZ, 4096)
    log_path = tmp_path / "stderr.log"
    with open(log_path, "wb") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "arb", "run", "--headless", "--duration", "3"],
            stdout=write_fd, stderr=log_file, cwd=tmp_path, env={**os.environ, "ARB_JOURNAL_PATH": str(tmp_path / "j")},
        )
    os.close(write_fd)
    try:
        for _ in range(1200):  # the run's 3 s and its start-up, with room; stdout never read meanwhile
            text = log_path.read_text(errors="replace")
            if "shutting down: duration elapsed" in text or child.poll() is not None:
                break
            time.sleep(0.1)
        stopped_unread = "shutting down: duration elapsed" in log_path.read_text(errors="replace")
    finally:
        received = bytearray()
        reader = read_all(read_fd, received)
        child.wait(120)
        reader.join(30)
    assert stopped_unread, log_path.read_text(errors="replace")[-3000:]
    assert child.returncode == 0, log_path.read_text(errors="replace")[-3000:]
    assert b'"event": "summary"' in received or b'"event":"summary"' in received


def test_the_end_of_a_run_whose_stderr_stalled_does_not_wait_on_it_for_good() -> None:
    """Its warning that not every line reached the reader went to the stderr it named, stalled:
    the process hung there after its run, and no signal could end it."""
    script = (
        "import sys\n"
        "from arb.output import off_loop_output\n"
        "with off_loop_output():\n"
        "    sys.stderr.write('x' * 200_000 + '\\n')  # more than the pipe takes: its reader stalled\n"
        "print('left', flush=True)\n"
    )
    read_fd, write_fd = os.pipe()  # stderr, never read
    try:
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=write_fd, text=True)
        os.close(write_fd)
        try:
            out, _ = child.communicate(timeout=60)
        finally:
            child.kill()
        assert out == "left\n"
    finally:
        os.close(read_fd)


SIGNAL_DURING_WRITES = """
import os, signal, sys, time
from arb.output import off_loop_output, write_without_blocking

with off_loop_output():
    signal.signal(signal.SIGTERM, lambda signum, frame: write_without_blocking("signal noted\\n"))
    print("ready", file=sys.__stdout__, flush=True)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        sys.stderr.write("line\\n")
print("done", file=sys.__stdout__, flush=True)
"""


def test_a_signal_handler_writing_while_a_line_is_being_queued_does_not_deadlock(tmp_path: Path) -> None:
    """A signal handler's message (a stop after the shutdown, a kill switch after the run) re-entered
    the queue of the stderr line the main thread was queuing: the queue's lock is not reentrant, and
    the process hung for good, deaf to any later signal (about one signal in five landed there)."""
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", SIGNAL_DURING_WRITES], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, cwd=tmp_path,
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
            time.sleep(0.05 + 0.3 * random.random())
            child.send_signal(signal.SIGTERM)
            out, _ = child.communicate(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert out == "done\n" and child.returncode == 0
