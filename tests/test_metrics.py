"""arb.metrics: the exporter over real engine parts, served on 127.0.0.1, and the health endpoints."""

from __future__ import annotations

import json
import socket
import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import gate_update, run
from metrics_parts import GATE, LIMITS, MEXC, NOW_NS, FakeConnector, engine_parts, feed, gate_sync, result, settle
from prometheus_client.parser import text_string_to_metric_families

from arb.config import ConfigurationManager
from arb.controller import ArbitrageController
from arb.errors import ConfigurationError
from arb.exchanges.models import FundingPayment
from arb.exchanges.private_stream import PrivateStreamStats
from arb.metrics import (
    LATENCY_BOUNDS_NS,
    READY_BOOK_AGE_S,
    EngineParts,
    MetricsExporter,
    MetricsServer,
    bucket_edges_ns,
    cumulative_counts,
    readiness,
    serve_metrics,
)
from arb.monitor import PerformanceMonitor
from arb.pipeline import ScannerPipeline
from arb.risk import FuturesHolding, RiskManager
from arb.sim.cluster import default_instruments
from arb.types import ArbitrageState, ExchangeName, MetricsConfig
from arb_core.book import OrderBook
from arb_core.latency import LatencyHistogram
from arb_core.wire.common import WireScale

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def scrape(parts: EngineParts, path: str = "/metrics", **server: Any) -> tuple[int, str, str]:
    exporter = MetricsExporter(parts, max_data_age_ms=100, clock=lambda: NOW_NS + 50_000_000)
    async with MetricsServer(exporter, "127.0.0.1", 0, **server) as srv:
        assert srv.port != 0
        return await get(f"{srv.url}{path}")


# --- /metrics -----------------------------------------------------------------------------


def test_the_servers_url_puts_an_ipv6_host_in_brackets() -> None:
    """``http://::1:9464/metrics`` (logged at start-up) is no URL a browser or scraper takes."""

    async def main() -> tuple[str, str]:
        exporter = MetricsExporter(await engine_parts())
        return MetricsServer(exporter, "::1", 9464).url, MetricsServer(exporter, "127.0.0.1", 9464).url

    assert run(main()) == ("http://[::1]:9464", "http://127.0.0.1:9464")


def test_funding_settled_today_is_a_gauge_and_part_of_the_daily_pnl() -> None:
    async def main() -> tuple[int, str, str]:
        parts = await engine_parts()
        assert parts.risk is not None
        now_ms = time.time_ns() // 1_000_000
        parts.risk.record_funding(FundingPayment(payment_id="1", symbol="BTC/USDT:USDT", amount=D("-0.5"), time_ms=now_ms))
        return await scrape(parts)

    _, _, text = run(main())
    s = parse(text)
    assert value(s, "arb_daily_funding_usd") == -0.5 and value(s, "arb_daily_realized_pnl_usd") == 0.75


def test_metrics_endpoint_serves_every_family_with_values() -> None:
    async def main() -> tuple[int, str, str]:
        return await scrape(await engine_parts())

    status, content_type, text = run(main())
    assert status == 200 and content_type.startswith("text/plain")
    s = parse(text)
    aaa = {"market": "gateio", "symbol": "AAA/USDT"}
    bbb = {"market": "gateio", "symbol": "BBB/USDT"}
    assert value(s, "arb_book_updates_total", **aaa) == 3
    assert value(s, "arb_book_ignored_updates_total", **aaa) == 1
    assert value(s, "arb_book_snapshots_total", **aaa) == 2
    assert value(s, "arb_book_resyncs_total", **aaa, reason="gap") == 1
    assert value(s, "arb_book_in_sync", **aaa) == 1 and value(s, "arb_book_in_sync", **bbb) == 0
    assert value(s, "arb_book_age_seconds", **aaa) == pytest.approx(0.05)
    assert value(s, "arb_books_stale", market="gateio") == 1  # BBB: out of sync; AAA is 50 ms old (max 100)
    assert value(s, "arb_stream_frames_unhandled_total", market="gateio", kind="unroutable") == 2
    assert value(s, "arb_stream_frames_unhandled_total", market="gateio", kind="unknown_symbol") == 1
    assert value(s, "arb_stream_frames_unhandled_total", market="gateio", kind="venue_error") == 1
    assert value(s, "arb_stream_frames_unhandled_total", market="gateio", kind="other") == 0
    assert value(s, "arb_opportunities_detected_total") == 4
    assert value(s, "arb_opportunities_executed_total") == 4
    assert value(s, "arb_executions_total", outcome="completed") == 2
    assert value(s, "arb_executions_total", outcome="failed") == 1
    assert value(s, "arb_executions_total", outcome="recovering") == 1
    assert value(s, "arb_recoveries_total", outcome="recovered") == 2
    assert value(s, "arb_recoveries_total", outcome="flagged") == 1
    assert value(s, "arb_recoveries_active", status="awaiting_approval") == 1
    assert value(s, "arb_realized_pnl_usd") == 1.25
    assert value(s, "arb_daily_realized_pnl_usd") == 1.25
    # Long 0.5 BTC on Gate.io spot; short 0.5 ETH on its perpetual (read from the venue at 100).
    assert value(s, "arb_exposure_usd", symbol="BTC/USDT") == 50 and value(s, "arb_exposure_usd", symbol="ETH/USDT") == 50
    assert value(s, "arb_exposure_total_usd") == 100
    assert value(s, "arb_exposure_limit_usd") == 5000
    assert value(s, "arb_position_base", market="gateio", symbol="BTC/USDT") == 0.5
    # Futures series name the perpetual as its book's series do, so that they join.
    assert value(s, "arb_position_base", market="gateio_futures", symbol="ETH/USDT:USDT") == -0.5
    assert value(s, "arb_liquidation_distance_bps", market="gateio_futures", symbol="ETH/USDT:USDT") == 312.5
    assert value(s, "arb_near_liquidation", market="gateio_futures", symbol="ETH/USDT:USDT") == 1
    assert value(s, "arb_balance", market="gateio", asset="USDT", state="free") == 950.5
    assert value(s, "arb_balance", market="gateio", asset="USDT", state="locked") == 10
    assert value(s, "arb_balance", market="mexc", asset="BTC", state="free") == 0.25
    assert value(s, "arb_circuit_breaker_tripped", breaker="kill_switch") == 0
    assert value(s, "arb_circuit_breaker_trips_total", breaker="stale_data") == 0
    assert value(s, "arb_connection_up", market="mexc") == 1
    assert value(s, "arb_connection_reconnects_total", market="gateio") == 1
    assert value(s, "arb_connection_messages_total", market="gateio") == 42
    assert value(s, "arb_connection_last_message_age_seconds", market="mexc") == 0.25
    assert value(s, "arb_connection_errors_total", market="mexc", kind="connect") == 1
    assert value(s, "arb_clock_skew_ms", market="gateio") == -12.5  # ahead of the venue
    assert ("arb_clock_skew_ms", frozenset({("market", "mexc")})) not in s  # not read yet
    assert value(s, "arb_stage_latency_seconds_count", stage="detect") == 3
    assert value(s, "arb_stage_latency_seconds_bucket", stage="detect", le="+Inf") == 3
    assert value(s, "arb_stage_latency_seconds_count", stage="fill") == 0
    assert value(s, "arb_stage_latency_seconds_sum", stage="place") == pytest.approx(0.007)


def test_latency_buckets_in_the_scrape_are_the_compiled_bucket_edges() -> None:
    async def main() -> tuple[int, str, str]:
        return await scrape(await engine_parts())

    s = parse(run(main())[2])
    edges = bucket_edges_ns(LatencyHistogram().config())
    scraped = sorted(float(dict(labels)["le"]) for name, labels in s
                     if name == "arb_stage_latency_seconds_bucket" and ("stage", "detect") in labels
                     and dict(labels)["le"] != "+Inf")
    assert scraped == [e / 1e9 for e in edges]
    # 2 us and 3 us are at or below the 5 us edge; 40 us is not.
    five_us = next(e for e in edges if e >= 5_000) / 1e9
    assert value(s, "arb_stage_latency_seconds_bucket", stage="detect", le=repr(five_us)) == 2


def test_registry_is_private() -> None:
    async def main() -> tuple[MetricsExporter, MetricsExporter]:
        parts = await engine_parts()
        return MetricsExporter(parts), MetricsExporter(parts)

    first, second = run(main())
    assert first.registry is not second.registry
    assert b"arb_executions_total" in first.render() and b"arb_executions_total" in second.render()
    assert prometheus_client.REGISTRY.get_sample_value("arb_opportunities_detected_total") is None


def test_real_controller_is_a_metrics_source() -> None:
    manager = ConfigurationManager(environ={})
    manager.load_configuration()
    controller = ArbitrageController(manager)
    exporter = MetricsExporter(controller)
    s = parse(exporter.render().decode())
    assert value(s, "arb_executions_total", outcome="completed") == 0
    state = exporter.readiness()
    assert not state.ready and state.reasons == ["no markets started"]


# --- latency conversion -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(100, 60_000_000_000), max_size=200))
def test_cumulative_counts_are_exact_at_every_edge(values: list[int]) -> None:
    histogram = LatencyHistogram()
    for v in values:
        histogram.record(v)
    edges = bucket_edges_ns(histogram.config())
    counts = cumulative_counts(histogram.buckets(), edges)
    assert counts == [sum(1 for v in values if v <= edge) for edge in edges]
    assert sum(c for _, c in histogram.buckets()) == histogram.count == len(values)


@pytest.mark.parametrize("config", [(100, 60_000_000_000, 7), (1, 1_000_000, 3), (1_000, 10_000_000_000, 11)])
def test_bucket_edges_are_bucket_upper_edges_near_the_nominal_bounds(config: tuple[int, int, int]) -> None:
    lowest, highest, bits = config
    edges = bucket_edges_ns(config)
    assert list(edges) == sorted(set(edges)) and all(e < highest for e in edges)
    for edge in edges:
        h = LatencyHistogram(lowest, highest, bits)
        h.record(edge)
        h.record(edge + 1)
        (first, _), (second, _) = h.buckets()  # edge and edge + 1 fall in adjacent buckets
        assert first == edge and second > edge
    for nominal in LATENCY_BOUNDS_NS:
        if lowest <= nominal < highest:
            near = min(e for e in edges if e >= nominal)
            assert near - nominal <= nominal / 2**bits + 1


def test_empty_histogram_converts_to_zero_counts() -> None:
    histogram = LatencyHistogram()
    edges = bucket_edges_ns(histogram.config())
    assert cumulative_counts(histogram.buckets(), edges) == [0] * len(edges)


# --- health -----------------------------------------------------------------------------


def test_healthz_answers_while_the_heartbeat_is_recent_and_503_when_stalled() -> None:
    now = [NOW_NS]

    async def main() -> list[tuple[int, dict[str, Any]]]:
        parts = await engine_parts()
        server = MetricsServer(
            MetricsExporter(parts), "127.0.0.1", 0, heartbeat_interval_s=60, liveness_timeout_s=120,
            clock=lambda: now[0],
        )
        out = []
        async with server:
            status, _, body = await get(f"{server.url}/healthz")
            out.append((status, json.loads(body)))
            now[0] += 121_000_000_000  # no heartbeat for 121 s
            status, _, body = await get(f"{server.url}/healthz")
            out.append((status, json.loads(body)))
        return out

    (ok_status, ok), (stalled_status, stalled) = run(main())
    assert ok_status == 200 and ok["status"] == "ok"
    assert stalled_status == 503 and stalled["status"] == "stalled" and stalled["heartbeat_age_s"] == 121.0


def test_startedz_answers_503_until_the_start_up_is_done() -> None:
    """The start-up replays the journal on the loop: a liveness probe running meanwhile killed a pod
    with a large journal mid-replay. A startup probe on /startedz holds liveness off until then."""

    async def main() -> list[tuple[int, dict[str, Any]]]:
        parts = await engine_parts()
        parts.started = False
        out = []
        async with MetricsServer(MetricsExporter(parts), "127.0.0.1", 0) as server:
            for started in (False, True):
                parts.started = started
                status, _, body = await get(f"{server.url}/startedz")
                out.append((status, json.loads(body)))
        return out

    assert run(main()) == [(503, {"status": "starting"}), (200, {"status": "ok"})]


def test_readyz_lists_why_the_engine_is_not_ready_then_becomes_ready() -> None:
    async def main() -> list[tuple[int, dict[str, Any]]]:
        parts = await engine_parts()
        gate = parts.connectors[GATE]
        assert isinstance(gate, FakeConnector) and gate.sync is not None
        now = [NOW_NS]
        exporter = MetricsExporter(parts, clock=lambda: now[0])  # the books' updates came at NOW_NS
        out = []
        async with MetricsServer(exporter, "127.0.0.1", 0) as server:

            async def ready() -> None:
                status, content_type, body = await get(f"{server.url}/readyz")
                assert content_type.startswith("application/json")
                out.append((status, json.loads(body)))

            await ready()  # BBB out of sync, MEXC has no books
            feed(gate.sync, gate_update("BBB_USDT", 10, 10, [("99.00", "1")]))
            await settle()
            parts.connectors = {GATE: gate}
            await ready()  # ready
            assert parts.risk is not None
            parts.risk.kill("test")
            await ready()  # kill switch
            parts.risk.resume()
            now[0] += READY_BOOK_AGE_S * 1_000_000_000 + 1  # connected and in sync, but nothing for 30 s
            await ready()  # stalled
            gate.connected = False
            now[0] = NOW_NS
            await ready()  # disconnected
        return out

    (s1, b1), (s2, b2), (s3, b3), (stalled_status, stalled), (s4, b4) = run(main())
    assert stalled_status == 503 and stalled["reasons"] == ["gateio: 2 of 2 books unchanged for over 30 s"]
    assert s1 == 503 and b1["ready"] is False
    assert b1["reasons"] == ["gateio: 1 of 2 books out of sync", "mexc: no books started"]
    assert b1["markets"]["gateio"] == {"connected": True, "books": 2, "books_in_sync": 1}
    assert s2 == 200 and b2 == {
        "ready": True, "reasons": [], "markets": {"gateio": {"connected": True, "books": 2, "books_in_sync": 2}},
        "kill_switch": False, "breakers_tripped": [],
    }
    assert s3 == 503 and b3["kill_switch"] is True and b3["reasons"] == ["kill switch engaged"]
    assert b3["breakers_tripped"] == ["kill_switch"]
    assert s4 == 503 and b4["reasons"] == ["gateio: market data not connected"]


def test_readyz_answers_503_once_the_shutdown_has_begun() -> None:
    """It answered 200 through the whole shutdown, the drain of executions in flight included: an
    engine no longer starting any execution passed for one ready to trade."""
    async def main() -> EngineParts:
        parts = await engine_parts()
        gate = parts.connectors[GATE]
        assert isinstance(gate, FakeConnector) and gate.sync is not None
        feed(gate.sync, gate_update("BBB_USDT", 10, 10, [("99.00", "1")]))
        await settle()
        parts.connectors = {GATE: gate}
        return parts

    parts = run(main())
    assert readiness(parts).ready
    parts.shutting_down = True
    state = readiness(parts)
    assert not state.ready and state.reasons == ["shutting down"]


def test_other_breakers_are_reported_but_do_not_block_readiness() -> None:
    async def main() -> EngineParts:
        parts = await engine_parts()
        parts.connectors = {GATE: FakeConnector("gateio", await gate_sync())}
        return parts

    parts = run(main())
    risk = parts.risk
    assert risk is not None
    for _ in range(3):
        risk.record_execution(result("x", ArbitrageState.FAILED, "0"))
    state = readiness(parts)
    assert state.breakers_tripped == ["consecutive_failures"] and not state.kill_switch
    assert state.reasons == ["gateio: 1 of 2 books out of sync"]


def test_unknown_path_is_404() -> None:
    async def main() -> tuple[int, str, str]:
        return await scrape(await engine_parts(), "/nothing")

    assert run(main())[0] == 404


# --- configuration and switching on -------------------------------------------------------


def test_metrics_are_off_by_default_and_serve_nothing() -> None:
    manager = ConfigurationManager(environ={})
    config = manager.load_configuration()
    assert config.metrics == MetricsConfig(enabled=False, host="127.0.0.1", port=9464)
    assert "metrics         off" in manager.summary()

    async def main() -> object:
        async with serve_metrics(config.metrics, await engine_parts()) as server:
            return server

    assert run(main()) is None


def test_metrics_section_and_env_switch_it_on(tmp_path: Path) -> None:
    path = tmp_path / "user.toml"
    path.write_text('[metrics]\nenabled = true\nhost = "0.0.0.0"\n')
    manager = ConfigurationManager(path, environ={"ARB_METRICS_PORT": "9100"})
    config = manager.load_configuration()
    assert config.metrics == MetricsConfig(enabled=True, host="0.0.0.0", port=9100)
    assert "http://0.0.0.0:9100/metrics" in manager.summary()


def test_invalid_metrics_settings_are_reported_together(tmp_path: Path) -> None:
    path = tmp_path / "user.toml"
    path.write_text('[metrics]\nport = 70000\nhost = "a b"\nenable = true\n')
    with pytest.raises(ConfigurationError) as info:
        ConfigurationManager(path, environ={}).load_configuration()
    text = str(info.value)
    assert "metrics.port" in text and "1 to 65535" in text
    assert "metrics.host" in text and "did you mean 'enabled'" in text


def test_serve_metrics_when_enabled_serves_until_the_body_ends() -> None:
    async def main() -> tuple[int, int]:
        parts = await engine_parts()
        async with serve_metrics(MetricsConfig(enabled=True, port=0), parts) as server:
            assert server is not None
            status, _, text = await get(f"{server.url}/metrics")
            url = server.url
        with pytest.raises(aiohttp.ClientConnectionError):
            await get(f"{url}/metrics")
        return status, text.count("arb_executions_total{")

    assert run(main()) == (200, 3)


def test_server_rejects_bad_settings() -> None:
    exporter = MetricsExporter(EngineParts(monitor=PerformanceMonitor(50)))
    with pytest.raises(ValueError, match="port=70000"):
        MetricsServer(exporter, port=70000)
    with pytest.raises(ValueError, match="heartbeat_interval_s=5"):
        MetricsServer(exporter, heartbeat_interval_s=5, liveness_timeout_s=5)


def test_a_taken_port_is_a_configuration_error() -> None:
    async def main() -> None:
        parts = await engine_parts()
        async with MetricsServer(MetricsExporter(parts), "127.0.0.1", 0) as taken:
            with pytest.raises(ConfigurationError, match=f"127.0.0.1:{taken.port}: cannot listen"):
                async with serve_metrics(MetricsConfig(enabled=True, port=taken.port), parts):
                    pass

    run(main())


def test_a_host_name_that_cannot_be_looked_up_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty label is refused by IDNA with UnicodeError, not OSError, before any lookup."""
    guarded = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        host.encode("idna")  # the resolver's first step, done here ahead of the test's loopback guard
        return guarded(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    async def main() -> None:
        with pytest.raises(ConfigurationError, match="metrics.host/metrics.port a..b:0: cannot listen"):
            async with serve_metrics(MetricsConfig(enabled=True, host="a..b", port=0), await engine_parts()):
                pass

    run(main())


def test_each_traded_market_has_a_halted_gauge() -> None:
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: 1, id_prefix="t")
    legs = [(i, OrderBook(i.exchange.value), WireScale(*i.wire_scale())) for i in default_instruments(("BTC",))]
    pipeline.register_symbol("BTC/USDT", [leg for leg in legs if not leg[0].is_futures])
    pipeline.halt_market(GATE, "BTC/USDT", "no longer tradable")
    s = parse(MetricsExporter(EngineParts(monitor=PerformanceMonitor(50), pipeline=pipeline)).render().decode())
    assert value(s, "arb_market_halted", market="gateio", symbol="BTC/USDT") == 1
    assert value(s, "arb_market_halted", market="mexc", symbol="BTC/USDT") == 0


def test_each_traded_market_exports_the_taker_fee_it_is_priced_with() -> None:
    pipeline = ScannerPipeline(max_data_age_ms=100, clock=lambda: 1, id_prefix="t")
    instruments = [i for i in default_instruments(("BTC",)) if not i.is_futures]
    pipeline.register_symbol("BTC/USDT", [(i, OrderBook(i.exchange.value), WireScale(*i.wire_scale())) for i in instruments])

    def fee(market: str) -> float:
        s = parse(MetricsExporter(EngineParts(monitor=PerformanceMonitor(50), pipeline=pipeline)).render().decode())
        return value(s, "arb_taker_fee_rate", market=market, symbol="BTC/USDT")

    gate = next(i for i in instruments if i.exchange is GATE)
    assert (fee("gateio"), fee("mexc")) == (0.002, 0.0005)
    pipeline.update_terms(msgspec.structs.replace(gate, taker_fee=D("0.0015")))  # the account's tier changed
    assert fee("gateio") == 0.0015


def test_each_futures_position_read_has_its_distance_from_liquidation_and_whether_it_is_too_near() -> None:
    risk = RiskManager(LIMITS)  # min_liquidation_distance_bps 500
    perp = ExchangeName.GATEIO_FUTURES
    holdings = {
        pair: FuturesHolding(base=D("-0.5"), lot=D("0.0001"), entry_price=D(100), liquidation_distance_bps=D(bps))
        for pair, bps in (("BTC/USDT", "312.5"), ("ETH/USDT", "950"))
    }
    risk.align_futures_positions(perp, holdings, ["BTC/USDT", "ETH/USDT"])
    s = parse(MetricsExporter(EngineParts(monitor=PerformanceMonitor(50), risk=risk)).render().decode())
    assert value(s, "arb_liquidation_distance_bps", market="gateio_futures", symbol="BTC/USDT:USDT") == 312.5
    assert value(s, "arb_near_liquidation", market="gateio_futures", symbol="BTC/USDT:USDT") == 1
    assert value(s, "arb_near_liquidation", market="gateio_futures", symbol="ETH/USDT:USDT") == 0
    risk.align_futures_positions(perp, {}, ["BTC/USDT", "ETH/USDT"])  # both closed: nothing to report
    s = parse(MetricsExporter(EngineParts(monitor=PerformanceMonitor(50), risk=risk)).render().decode())
    assert not [key for key in s if key[0].startswith(("arb_liquidation", "arb_near"))]


def test_a_private_stream_that_is_not_subscribed_shows_and_blocks_readiness() -> None:
    """A private stream down or refused (balances then come by REST only) is a reason the engine
    is not ready, and its gauge says so; a market without one is neither."""
    async def main() -> tuple[EngineParts, tuple[int, str, str]]:
        parts = await engine_parts()
        parts.connectors = {
            GATE: FakeConnector("gateio", await gate_sync(), private=False),
            MEXC: FakeConnector("mexc", None, private=True),
        }
        return parts, await scrape(parts)

    parts, (_, _, body) = run(main())
    s = parse(body)
    assert value(s, "arb_private_stream_subscribed", market="gateio") == 0
    assert value(s, "arb_private_stream_subscribed", market="mexc") == 1
    assert "gateio: private stream not subscribed (balances by REST only)" in readiness(parts).reasons
    parts.connectors = {MEXC: FakeConnector("mexc", None)}  # none running: not a reason, no gauge
    assert not any("private stream" in r for r in readiness(parts).reasons)


def test_the_private_streams_counters_are_exported_per_market() -> None:
    """Its unreadable frames showed in the log only, where a scrape could not see them."""
    async def main() -> tuple[int, str, str]:
        parts = await engine_parts()
        parts.connectors = {
            GATE: FakeConnector("gateio", await gate_sync(), private=True,
                                private_stats=PrivateStreamStats(malformed=3, unlisted=5, refusals=1, reconnects=2)),
            MEXC: FakeConnector("mexc", None),  # none running
        }
        return await scrape(parts)

    s = parse(run(main())[2])
    assert [value(s, f"arb_private_stream_{name}_total", market="gateio")
            for name in ("malformed_frames", "unlisted_items", "refusals", "reconnects")] == [3, 5, 1, 2]
    assert not [key for key in s if key[0].startswith("arb_private_stream_") and ("market", "mexc") in key[1]]
