"""arb.sim.market replay source over the recorded cryptofeed files."""

from decimal import Decimal as D
from pathlib import Path

import pytest

from arb.sim.market import RecordedFrame, exchange_of_url, merge_recordings, paced, read_recording
from arb.types import ExchangeName


def test_bad_lines_and_urls(tmp_path: Path) -> None:
    orphan = tmp_path / "orphan"
    orphan.write_bytes(b'1619093532.5: {"a":1}\n')
    with pytest.raises(ValueError, match="orphan:1: server frame before any connection line"):
        list(read_recording(orphan))
    junk = tmp_path / "junk"
    junk.write_bytes(b"wss://api.gateio.ws/ws/v4/ <-> 1.0\nhello there world again\n")
    with pytest.raises(ValueError, match="junk:2: unrecognised"):
        list(read_recording(junk))
    stamp = tmp_path / "stamp"
    stamp.write_bytes(b"wss://api.gateio.ws/ws/v4/ <-> 1.0\nabc: {}\n")
    with pytest.raises(ValueError, match="stamp:2: timestamp 'abc'"):
        list(read_recording(stamp))
    for name, line in (("nan", b"nan: {}"), ("utf8", b"\xff1.5: {}")):
        bad = tmp_path / name
        bad.write_bytes(b"wss://api.gateio.ws/ws/v4/ <-> 1.0\n" + line + b"\n")
        with pytest.raises(ValueError, match=f"{name}:2: "):
            list(read_recording(bad))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"wss://example.com/ws <-> 1.0\n1.5: {}\n")
    with pytest.raises(ValueError, match="elsewhere:2: recording: no simulated market serves"):
        list(read_recording(elsewhere))
    with pytest.raises(ValueError, match="no simulated market"):
        exchange_of_url("wss://example.com/ws")
    with pytest.raises(ValueError, match="speed"):
        list(paced([], 0, 0))


def test_urls_map_to_markets() -> None:
    assert exchange_of_url("wss://fx-ws.gateio.ws/v4/ws/usdt") is ExchangeName.GATEIO_FUTURES
    assert exchange_of_url("https://api.gateio.ws/api/v4/futures/usdt/order_book?x=1") is ExchangeName.GATEIO_FUTURES
    assert exchange_of_url("https://api.gateio.ws/api/v4/spot/order_book") is ExchangeName.GATEIO
    assert exchange_of_url("wss://wbs-api.mexc.com/ws") is ExchangeName.MEXC


def test_spot_ws_recording_yields_server_frames_only(shared_data: Path) -> None:
    frames = list(read_recording(shared_data / "cryptofeed" / "GATEIO.ws.1.0"))
    assert len(frames) == 239  # 262 lines - 1 connect - 22 client subscribes
    assert all(f.kind == "ws" and f.exchange is ExchangeName.GATEIO for f in frames)
    assert all(f.raw.startswith(b"{") and f.raw.endswith(b"}") for f in frames)
    assert sum(b'"spot.order_book_update"' in f.raw and b'"update"' in f.raw for f in frames) == 172
    assert frames[0].time_ns >= 1_619_093_531_891_181_000  # after the connect line, exact ns from the text


def test_merge_orders_all_files_by_time(shared_data: Path) -> None:
    folder = shared_data / "cryptofeed"
    names = ["GATEIO.ws.1.0", "GATEIO.http.0.0", "GATEIO_FUTURES.ws.1.0", "GATEIO_FUTURES.http.0.0"]
    merged = list(merge_recordings(folder / name for name in names))
    assert len(merged) == 239 + 10 + 450 + 10
    times = [f.time_ns for f in merged]
    assert times == sorted(times)
    http = [f for f in merged if f.kind == "http"]
    assert {f.exchange for f in http} == {ExchangeName.GATEIO, ExchangeName.GATEIO_FUTURES}
    assert all(b'"asks"' in f.raw for f in http)


def frame(time_ns: int) -> RecordedFrame:
    return RecordedFrame(time_ns, ExchangeName.GATEIO, "wss://api.gateio.ws/ws/v4/", "ws", b"{}")


def test_speed_factor_math() -> None:
    frames = [frame(5_000_000_000), frame(5_000_000_003), frame(6_000_000_000)]
    assert [due for due, _ in paced(frames, 100, 1)] == [100, 103, 1_000_000_100]
    assert [due for due, _ in paced(frames, 100, 10)] == [100, 100, 100_000_100]  # 0.3 ns rounds down
    assert [due for due, _ in paced(frames, 100, D("0.5"))] == [100, 106, 2_000_000_100]
    assert [due for due, _ in paced(frames, 100, None)] == [100, 100, 100]
    assert [f for _, f in paced(frames, 0, 2)] == frames


def test_replay_of_a_real_file_at_speed(shared_data: Path) -> None:
    frames = list(read_recording(shared_data / "cryptofeed" / "GATEIO_FUTURES.ws.1.0"))
    span = frames[-1].time_ns - frames[0].time_ns
    due = [d for d, _ in paced(frames, 0, 4)]
    assert due[0] == 0 and due[-1] == span // 4 and due == sorted(due)
