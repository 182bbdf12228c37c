"""arb.output: a run's output written off the event loop; a reader that stalls drops lines, whole."""

from __future__ import annotations

import fcntl
import io
import logging
import os
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
    stream = QueuedStream(target, max_writes=50)
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
