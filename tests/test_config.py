"""ConfigurationManager: layering, env overrides, and every validation rule (bad input first)."""

import importlib.util
import logging
import os
import threading
import tomllib
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from arb.config import (
    ENGINE_FIELDS,
    ENV_OVERRIDES,
    EXCHANGE_FIELDS,
    METRICS_FIELDS,
    RISK_FIELDS,
    ConfigurationManager,
    default_config_path,
)
from arb.errors import ConfigurationError
from arb.types import ArbitrageConfig, ExchangeConfig, ExchangeName, MetricsConfig, OpportunityType, RiskLimits

REPO_DEFAULTS = Path(__file__).resolve().parent.parent / "config" / "default.toml"


def load(tmp_path: Path, text: str | None = None, env: dict[str, str] | None = None) -> ConfigurationManager:
    user = None
    if text is not None:
        user = tmp_path / "user.toml"
        user.write_text(text)
    manager = ConfigurationManager(user, environ=env or {})
    manager.load_configuration(dry_run=True)
    return manager


def problems(tmp_path: Path, text: str | None = None, env: dict[str, str] | None = None) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as info:
        load(tmp_path, text, env)
    return info.value.problems


def test_installed_defaults_are_the_repository_file() -> None:
    assert default_config_path().read_bytes() == REPO_DEFAULTS.read_bytes()


def test_shipped_defaults_state_every_default_the_code_has() -> None:
    # The shipped file is where an operator reads what a setting left out is: it states them all.
    from arb.exchanges.connector import DEFAULT_ORDER_TRANSPORT

    shipped = tomllib.loads(REPO_DEFAULTS.read_text())
    manager = ConfigurationManager(environ={})
    config = manager.load_configuration(dry_run=True)
    loaded = {"engine": config, "risk": config.risk_limits, "metrics": config.metrics}
    for section, struct, keys in (
        ("engine", ArbitrageConfig, ENGINE_FIELDS), ("risk", RiskLimits, RISK_FIELDS),
        ("metrics", MetricsConfig, METRICS_FIELDS),
    ):
        for field in msgspec.structs.fields(struct):
            if field.name in keys and field.default not in (msgspec.NODEFAULT, None):
                assert field.name in shipped[section], f"{section}.{field.name}"
                assert getattr(loaded[section], field.name) == field.default, f"{section}.{field.name}"
    for venue, table in shipped["exchanges"].items():
        for field in msgspec.structs.fields(ExchangeConfig):
            if field.name in EXCHANGE_FIELDS and field.default not in (msgspec.NODEFAULT, None):
                assert field.name in table, f"exchanges.{venue}.{field.name}"
    assert manager.get_exchange_config("gateio").order_transport == DEFAULT_ORDER_TRANSPORT


def test_defaults_are_safe_and_small(tmp_path: Path) -> None:
    config = load(tmp_path).config
    assert config.dry_run is True
    assert config.symbols == ("BTC/USDT", "ETH/USDT")
    assert {e.name for e in config.exchanges if e.enabled} == {"mexc", "gateio"}
    limits = config.risk_limits
    assert limits.max_position_size_usd == Decimal("100")
    assert limits.max_total_exposure_usd <= Decimal("1000")
    assert isinstance(limits.min_profit_margin_bps, Decimal)
    assert config.max_data_age_ms == 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[risk]\nmax_positon_size_usd = 5\n", "user.toml: risk.max_positon_size_usd: unknown key; did you mean"),
        ("[engine]\nsymbol = ['BTC/USDT']\n", "user.toml: engine.symbol: unknown key; did you mean 'symbols'"),
        ("[enigne]\n", "user.toml: enigne: unknown key; did you mean 'engine'"),
        ("[exchanges.binance]\nenabled = true\n", "unknown venue 'binance'; supported venues: mexc, gateio"),
        ("[exchanges.mexc]\ntimeout = 5\n", "user.toml: exchanges.mexc.timeout: unknown key"),
        ("[risk]\nmax_daily_loss_usd = -1\n", "risk.max_daily_loss_usd: -1: must be greater than 0"),
        ("[risk]\nmax_position_size_usd = 0\n", "risk.max_position_size_usd: 0: must be greater than 0"),
        ("[risk]\nmin_profit_margin_bps = -2\n", "risk.min_profit_margin_bps: -2: must be 0 or more"),
        ("[risk]\nmax_daily_loss_usd = '1,000'\n", "'1,000': expected a decimal number"),
        ("[risk]\nmax_daily_loss_usd = 'nan'\n", "'nan': expected a finite number"),
        ("[risk]\nmax_daily_loss_usd = true\n", "True: expected a number"),
        ("[engine]\nmax_data_age_ms = 1.5\n", "engine.max_data_age_ms: 1.5: expected an integer"),
        ("[engine]\nmax_data_age_ms = 0\n", "must be an integer from 1 to 60000"),
        ("[engine]\nenable_risk_checks = 'sometimes'\n", "'sometimes': expected true or false"),
        ("[engine]\nhedge_holding_horizon_s = -1\n", "engine.hedge_holding_horizon_s: -1: must be an integer from 0 to 2592000"),
        ("[engine]\nfunding_refresh_interval_ms = 10\n", "funding_refresh_interval_ms: 10: must be an integer from 1000 to"),
        ("[engine]\nsymbols = ['BTCUSDT']\n", "'BTCUSDT' is not a symbol; write BASE/QUOTE"),
        ("[engine]\nsymbols = ['BTC/EUR']\n", "'BTC/EUR' is not supported; the quote currency must be"),
        ("[engine]\nsymbols = []\n", "must list at least one symbol"),
        ("[engine]\nsymbols = ['BTC/USDT', 'BTC/USDT']\n", "lists a symbol twice"),
        ("[engine]\nopportunity_types = ['triangular']\n", "'triangular' not allowed; choose from"),
        ("[exchanges.gateio]\nmarkets = ['options']\n", "'options' not allowed; choose from spot, futures"),
        ("[exchanges.mexc]\nrest_url = 'ftp://x'\n", "expected a URL starting http:// or https://"),
        ("[exchanges.mexc]\nrest_url = 'wss://api.mexc.com'\n", "expected a URL starting http:// or https://"),
        ("[exchanges.gateio]\nws_url = 'https://api.gateio.ws'\n", "expected a URL starting ws:// or wss://"),
        ("[exchanges.mexc]\nrest_url = 'http://127.0.0.1:99999'\n", "not a valid URL: Port out of range 0-65535"),
        ("[exchanges.mexc]\nrest_url = 'http://127.0.0.1:8080 x'\n", "'http://127.0.0.1:8080 x': a URL has no spaces"),
        ("[exchanges.mexc]\nrest_url = 'http://[::1'\n", "'http://[::1': not a valid URL: Invalid IPv6 URL"),
        ("[exchanges.gateio]\nws_url = 'ws://:80'\n", "exchanges.gateio.ws_url: 'ws://:80': no host"),
        ("[engine]\nmax_data_age_ms = '" + "9" * 5000 + "'\n", "out of range: at most 30 digits"),
        ("[engine]\nmax_data_age_ms = '" + "0" * 5000 + "100001'\n", "must be an integer from 1 to 60000"),
        ("[engine]\nmax_data_age_ms = " + "9" * 5000 + "\n", "user.toml: not readable: Exceeds the limit"),
        ("[risk]\nmax_daily_loss_usd = '1e1000000'\n", "'1e1000000': out of range: at most 30 digits"),
        ("[risk]\nmin_profit_margin_bps = '1e-40'\n", "'1e-40': out of range"),
        ("[exchanges.gateio]\norder_transport = 'fix'\n", "'fix': choose one of 'rest', 'ws'"),
        ("[exchanges.mexc]\norder_transport = 'ws'\n", "mexc has no websocket trading API; use \"rest\""),
        ("[exchanges.mexc]\nenabled = false\n", "spot_spot needs the spot market enabled on both venues"),
        ("[risk]\nmax_total_exposure_usd = 50\n", "50: must be at least risk.max_position_size_usd (100"),
        ("[risk]\nmax_symbol_exposure_usd = 501\n", "501: must not exceed risk.max_total_exposure_usd"),
        ("[risk]\nmax_symbol_exposure_usd = 99\n", "99: must be at least risk.max_position_size_usd (100, from"),
        ("risk = 5\n", "user.toml: risk: expected a table"),
        ("exchanges = 5\n", "exchanges: expected a table of venues"),
        ("[engine]\njournal_path = '.'\n", "engine.journal_path: '.': names a directory, expected a file"),
        ("[engine]\njournal_path = '/var/lib/arb/'\n", "'/var/lib/arb/': names a directory, expected a file"),
        ('[engine]\njournal_path = "a\\u0000b.sqlite3"\n', "engine.journal_path: 'a\\x00b.sqlite3': a file path cannot"),
    ],
)
def test_each_bad_value_is_named_with_its_source(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert any(expected in line for line in found), found


def test_digits_of_other_scripts_are_not_numbers(tmp_path: Path) -> None:
    """int() and Decimal() read Arabic-Indic digits: "٣٣" would have been port 33."""
    assert any("engine.max_data_age_ms: '٣٣': expected an integer" in p for p in problems(
        tmp_path, "[engine]\nmax_data_age_ms = '٣٣'\n"))
    assert any("'١٠': expected a decimal number" in p for p in problems(tmp_path, "[risk]\nmax_daily_loss_usd = '١٠'\n"))


def test_a_file_with_a_byte_order_mark_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf[engine]\nmax_data_age_ms = 80\n")
    with pytest.raises(ConfigurationError) as info:
        ConfigurationManager(path, environ={}).load_configuration(dry_run=True)
    assert info.value.problems == (f"{path}: starts with a byte-order mark, which TOML does not take: save it as "
                                   "UTF-8 without one",)


def test_hedge_needs_a_futures_market(tmp_path: Path) -> None:
    text = "[engine]\nopportunity_types = ['spot_futures_hedge']\n[exchanges.gateio]\nmarkets = ['spot']\n"
    assert any("spot_futures_hedge needs a venue" in p for p in problems(tmp_path, text))


def test_hedge_on_futures_that_are_market_data_only_is_refused(tmp_path: Path) -> None:
    text = (
        "[engine]\nopportunity_types = ['spot_futures_hedge']\n[exchanges.gateio]\nmarkets = ['spot']\n"
        "[exchanges.mexc]\nmarkets = ['spot', 'futures']\n"
    )
    assert any(
        "whose futures can be traded (mexc_futures: market data only)" in p for p in problems(tmp_path, text)
    ), problems(tmp_path, text)


def test_fewer_than_two_markets_is_rejected(tmp_path: Path) -> None:
    text = "[exchanges.mexc]\nenabled = false\n[exchanges.gateio]\nmarkets = ['spot']\n"
    assert any("at least two markets must be enabled" in p for p in problems(tmp_path, text))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
[engine]
symbols = ["BTC/USDT", "eth"]
max_data_age_ms = -1
[risk]
max_daily_loss_usd = "ten"
max_position_size_usd = 1000
[exchanges.kraken]
enabled = true
"""
    found = problems(tmp_path, text, {"ARB_ENABLE_RECOVERY_MODE": "perhaps"})
    assert len(found) == 6, found
    assert len(set(found)) == len(found)


def test_missing_required_values_without_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    manager = ConfigurationManager(defaults_file=empty, environ={})
    with pytest.raises(ConfigurationError) as info:
        manager.load_configuration()
    text = "\n".join(info.value.problems)
    for key in ("risk.max_position_size_usd", "risk.max_total_exposure_usd", "engine.symbols"):
        assert f"{key}: missing" in text


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "file not found"), ("a = [", "not valid TOML"), (b"\xff\xfe", "not UTF-8 text")],
)
def test_unreadable_user_files(tmp_path: Path, content: str | bytes | None, expected: str) -> None:
    path = tmp_path / "cfg.toml"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigurationError) as info:
        ConfigurationManager(path, environ={}).load_configuration()
    assert info.value.problems[0].startswith(f"{path}: {expected}")


def test_a_config_path_the_system_cannot_open_is_a_problem_naming_why(tmp_path: Path) -> None:
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    regular = tmp_path / "file"
    regular.write_text("")
    for path, reason in ((loop, "Too many levels of symbolic links"), (regular / "cfg.toml", "Not a directory")):
        with pytest.raises(ConfigurationError) as info:
            ConfigurationManager(path, environ={}).load_configuration()
        assert info.value.problems == (f"{path}: cannot be read: {reason}",)


def test_unknown_arb_variable_is_an_error_but_build_variables_are_not(tmp_path: Path) -> None:
    found = problems(tmp_path, env={"ARB_MAX_POSITON_SIZE_USD": "5", "ARB_BUILD_ONLY": "book"})
    assert found == ("env ARB_MAX_POSITON_SIZE_USD: unknown setting; did you mean ARB_MAX_POSITION_SIZE_USD?",)


@pytest.mark.parametrize(
    ("name", "table", "key"),
    [
        ("ARB_MAX_SYMBOL_EXPOSURE_USD", "risk", "max_symbol_exposure_usd"),
        ("ARB_MAX_EXECUTION_LATENCY_MS", "risk", "max_execution_latency_ms"),
        ("ARB_GATEIO_REST_TIMEOUT_MS", "exchanges.gateio", "rest_timeout_ms"),
        ("ARB_PAPER_MEXC", "paper", "mexc"),
    ],
)
def test_a_variable_for_a_file_only_setting_says_where_to_set_it(
    tmp_path: Path, name: str, table: str, key: str
) -> None:
    # Not "did you mean" another variable: the nearest one is a different limit.
    assert problems(tmp_path, env={name: "150"}) == (
        f"env {name}: {table}.{key} can be set in the --config file only ([{table}] {key})",
    )


def test_every_setting_without_a_variable_is_named_when_one_is_tried() -> None:
    from arb.config import FILE_ONLY_VARIABLES, PAPER_FIELDS

    settings = {f"{section}.{key}" for section, fields in (("engine", ENGINE_FIELDS), ("risk", RISK_FIELDS),
                ("metrics", METRICS_FIELDS), ("paper", PAPER_FIELDS)) for key in fields}
    settings |= {f"exchanges.{venue}.{key}" for venue in ("mexc", "gateio") for key in EXCHANGE_FIELDS}
    named = {f"{table}.{key}" for table, key in FILE_ONLY_VARIABLES.values()}
    assert named == settings - set(ENV_OVERRIDES.values())
    assert not set(FILE_ONLY_VARIABLES) & set(ENV_OVERRIDES)


def test_an_event_loop_run_does_not_have_is_refused_as_run_refuses_it(tmp_path: Path) -> None:
    assert problems(tmp_path, env={"ARB_EVENT_LOOP": "bad"}) == ("ARB_EVENT_LOOP='bad': must be one of uvloop, asyncio",)
    assert load(tmp_path, env={"ARB_EVENT_LOOP": "asyncio"}).config.symbols


def test_uvloop_chosen_where_it_is_not_installed_is_refused_as_run_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config passed ARB_EVENT_LOOP=uvloop without uvloop, which run then refused."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "uvloop" else real(name, *args))
    assert problems(tmp_path, env={"ARB_EVENT_LOOP": "uvloop"}) == ("ARB_EVENT_LOOP=uvloop: uvloop is not installed",)


def test_user_file_overrides_defaults_and_env_overrides_both(tmp_path: Path) -> None:
    text = "[risk]\nmax_position_size_usd = '200'\nmax_daily_loss_usd = '20'\n"
    config = load(tmp_path, text, {"ARB_MAX_POSITION_SIZE_USD": "300"}).config
    assert config.risk_limits.max_position_size_usd == Decimal("300")  # env beats file
    assert config.risk_limits.max_daily_loss_usd == Decimal("20")  # file beats defaults
    assert config.risk_limits.max_total_exposure_usd == Decimal("500")  # defaults remain


def test_a_setting_is_chosen_when_the_file_or_the_environment_sets_it(tmp_path: Path) -> None:
    assert not load(tmp_path, "", {}).chosen("engine.symbols")  # the shipped default
    assert load(tmp_path, "[engine]\nsymbols = ['ETH/USDT']\n", {}).chosen("engine.symbols")
    assert load(tmp_path, "", {"ARB_SYMBOLS": "ETH/USDT"}).chosen("engine.symbols")
    assert not load(tmp_path, "[risk]\nmax_daily_loss_usd = '20'\n", {}).chosen("engine.symbols")


def test_env_override_errors_name_the_variable(tmp_path: Path) -> None:
    found = problems(tmp_path, env={"ARB_MAX_TOTAL_EXPOSURE_USD": "50"})
    assert found[0].startswith("env ARB_MAX_TOTAL_EXPOSURE_USD: 50: must be at least")


ENV_CASES = [
    ("ARB_MAX_POSITION_SIZE_USD", "150.25", "risk_limits.max_position_size_usd", Decimal("150.25")),
    ("ARB_MAX_TOTAL_EXPOSURE_USD", "900", "risk_limits.max_total_exposure_usd", Decimal("900")),
    ("ARB_MIN_PROFIT_MARGIN_BPS", "7.5", "risk_limits.min_profit_margin_bps", Decimal("7.5")),
    ("ARB_MAX_PROFIT_MARGIN_BPS", "80", "risk_limits.max_profit_margin_bps", Decimal("80")),
    ("ARB_MIN_LIQUIDATION_DISTANCE_BPS", "1500", "risk_limits.min_liquidation_distance_bps", Decimal("1500")),
    ("ARB_MAX_DAILY_LOSS_USD", "12", "risk_limits.max_daily_loss_usd", Decimal("12")),
    ("ARB_MAX_CONSECUTIVE_FAILURES", "5", "risk_limits.max_consecutive_failures", 5),
    ("ARB_TARGET_EXECUTION_TIME_MS", "25", "target_execution_time_ms", 25),
    ("ARB_OPPORTUNITY_SCAN_INTERVAL_MS", "5", "opportunity_scan_interval_ms", 5),
    ("ARB_BALANCE_REFRESH_INTERVAL_MS", "2000", "balance_refresh_interval_ms", 2000),
    ("ARB_ENABLE_CIRCUIT_BREAKERS", "false", "enable_circuit_breakers", False),
    ("ARB_ENABLE_RISK_CHECKS", "0", "enable_risk_checks", False),
    ("ARB_ENABLE_RECOVERY_MODE", "no", "enable_recovery_mode", False),
    ("ARB_MAX_DATA_AGE_MS", "250", "max_data_age_ms", 250),
    ("ARB_JOURNAL_PATH", "/var/lib/arb/journal.sqlite3", "journal_path", "/var/lib/arb/journal.sqlite3"),
    ("ARB_JOURNAL_SYNCHRONOUS", "normal", "journal_synchronous", "NORMAL"),
    ("ARB_SYMBOLS", "SOL/USDT, BTC/USDT", "symbols", ("SOL/USDT", "BTC/USDT")),
    ("ARB_OPPORTUNITY_TYPES", "spot_spot", "opportunity_types", (OpportunityType.SPOT_SPOT,)),
    ("ARB_METRICS_ENABLED", "true", "metrics.enabled", True),
    ("ARB_METRICS_HOST", "0.0.0.0", "metrics.host", "0.0.0.0"),
    ("ARB_METRICS_PORT", "9100", "metrics.port", 9100),
    ("ARB_HEDGE_HOLDING_HORIZON_S", "3600", "hedge_holding_horizon_s", 3600),
    ("ARB_FUNDING_REFRESH_INTERVAL_MS", "30000", "funding_refresh_interval_ms", 30000),
    ("ARB_INSTRUMENT_REFRESH_INTERVAL_MS", "0", "instrument_refresh_interval_ms", 0),
    ("ARB_BUSY_POLL", "true", "busy_poll", True),
    ("ARB_REHEARSAL_INTERVAL_MS", "0", "rehearsal_interval_ms", 0),
    ("ARB_PAPER_LATENCY_MS", "15", "paper_latency_ms", 15),
]


@pytest.mark.parametrize(("variable", "raw", "attribute", "expected"), ENV_CASES)
def test_each_env_override(tmp_path: Path, variable: str, raw: str, attribute: str, expected: object) -> None:
    value: object = load(tmp_path, env={variable: raw}).config
    for part in attribute.split("."):
        value = getattr(value, part)
    assert value == expected


def test_every_documented_override_is_tested() -> None:
    assert set(ENV_OVERRIDES) == {case[0] for case in ENV_CASES}


def test_money_is_exact_even_from_toml_floats(tmp_path: Path) -> None:
    config = load(tmp_path, "[risk]\nmin_profit_margin_bps = 0.1\n").config
    assert config.risk_limits.min_profit_margin_bps == Decimal("0.1")


def test_toml_floats_keep_every_digit_written(tmp_path: Path) -> None:
    # More digits than a binary float holds: read through one, each came back rounded.
    text = (
        "[risk]\nmin_profit_margin_bps = 10.000000000000000001\n"
        "[paper]\nmexc = { USDT = 10000, BTC = 0.12345678901234567891 }\n"
    )
    config = load(tmp_path, text).config
    assert config.risk_limits.min_profit_margin_bps == Decimal("10.000000000000000001")
    assert config.paper_balances["mexc"] == {"USDT": Decimal(10000), "BTC": Decimal("0.12345678901234567891")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[risk]\nmax_daily_loss_usd = inf\n", "risk.max_daily_loss_usd: Infinity: expected a finite number"),
        ("[risk]\nmax_daily_loss_usd = 1e400\n", "risk.max_daily_loss_usd: 1E+400: out of range"),
        ("[paper]\nmexc = { BTC = -0.5 }\n", "paper.mexc: {'BTC': -0.5}: BTC = -0.5: must be 0 or more"),
        ("[exchanges.mexc]\nmarkets = [1.5]\n", "exchanges.mexc.markets: [1.5]: expected a list of strings"),
    ],
)
def test_refused_toml_floats_are_named_as_written(tmp_path: Path, text: str, expected: str) -> None:
    assert any(expected in problem for problem in problems(tmp_path, text))


def test_the_keys_a_config_from_a_pipe_states_are_known_from_its_one_read(tmp_path: Path) -> None:
    fifo = tmp_path / "arb.toml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=("[engine]\nsymbols = ['BTC/USDT']\n[risk]\n"
                                                              "max_daily_loss_usd = '20'\n",))
    writer.start()
    manager = ConfigurationManager(fifo, environ={"ARB_MAX_DAILY_LOSS_USD": "30"})
    manager.load_configuration(dry_run=True)
    writer.join()
    assert manager.stated_in_file("engine.symbols") and manager.stated_in_file("risk.max_daily_loss_usd")
    assert not manager.stated_in_file("risk.max_position_size_usd")  # from the shipped defaults only
    assert not load(tmp_path, None).stated_in_file("engine.symbols")  # no --config file


def test_the_journal_path_is_checked_on_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load(tmp_path).journal_path_problems() == []  # relative: in the working directory
    assert load(tmp_path, f"[engine]\njournal_path = '{tmp_path}/j.sqlite3'\n").journal_path_problems() == []
    (tmp_path / "dir").mkdir()
    (problem,) = load(tmp_path, "[engine]\njournal_path = 'dir'\n").journal_path_problems()
    assert problem == f"engine.journal_path 'dir' ({tmp_path / 'user.toml'}: engine.journal_path): is a directory; " \
                      "name the journal's file in it"
    (problem,) = load(tmp_path, env={"ARB_JOURNAL_PATH": "missing/j.sqlite3"}).journal_path_problems()
    assert problem.endswith(f"(env ARB_JOURNAL_PATH): its directory {tmp_path / 'missing'} does not exist")
    (problem,) = load(tmp_path, env={"ARB_JOURNAL_PATH": "user.toml/j.sqlite3"}).journal_path_problems()
    assert problem.endswith(f"its directory {tmp_path / 'user.toml'} does not exist")  # a file, not a directory
    # A symlink's file is made where it points; a file with other names (hard links) the journal refuses.
    (tmp_path / "link.sqlite3").symlink_to(tmp_path / "gone" / "j.sqlite3")
    (problem,) = load(tmp_path, env={"ARB_JOURNAL_PATH": "link.sqlite3"}).journal_path_problems()
    assert problem.endswith(f"its directory {tmp_path / 'gone'} does not exist")
    (tmp_path / "a.sqlite3").write_bytes(b"")
    os.link(tmp_path / "a.sqlite3", tmp_path / "b.sqlite3")
    (problem,) = load(tmp_path, env={"ARB_JOURNAL_PATH": "a.sqlite3"}).journal_path_problems()
    assert problem.endswith(
        "its file has 2 names (hard links); remove the others (find -samefile lists them), or name it through a symlink"
    )
    (tmp_path / "notes.txt").write_text("not a journal\n")
    (problem,) = load(tmp_path, env={"ARB_JOURNAL_PATH": "notes.txt"}).journal_path_problems()
    assert problem.endswith("is not an SQLite database, so not a journal; name the journal's file, or one not made yet")


def test_hedge_configuration_loads(tmp_path: Path) -> None:
    text = "[engine]\nopportunity_types = ['spot_spot', 'spot_futures_hedge']\n"
    config = load(tmp_path, text).config
    assert config.opportunity_types == (OpportunityType.SPOT_SPOT, OpportunityType.SPOT_FUTURES_HEDGE)
    # The shipped funding defaults: one 8 h Gate.io funding period held, rates read every minute.
    assert (config.hedge_holding_horizon_s, config.funding_refresh_interval_ms) == (28_800, 60_000)


def test_get_exchange_config(tmp_path: Path) -> None:
    manager = load(tmp_path)
    assert manager.get_exchange_config("gateio").markets == ("spot", "futures")
    assert manager.get_exchange_config(ExchangeName.GATEIO_FUTURES).name == "gateio"
    assert manager.get_exchange_config(ExchangeName.MEXC).exchange_names == (ExchangeName.MEXC,)
    with pytest.raises(ConfigurationError, match="exchange 'binance': not configured"):
        manager.get_exchange_config("binance")


def test_config_is_required_before_use() -> None:
    with pytest.raises(ConfigurationError, match="not loaded yet"):
        ConfigurationManager(environ={}).config  # noqa: B018


def test_summary_masks_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"GATEIO_API_KEY": "gate-key-visible-123", "GATEIO_SECRET_KEY": "gate-secret-visible-456"}
    manager = load(tmp_path, env=env)
    with caplog.at_level("INFO"):
        manager.log_summary()
    summary = manager.summary()
    for text in (summary, caplog.text, repr(manager.get_credentials("gateio")), repr(manager.config)):
        assert "visible" not in text
    assert "gateio" in summary and "key <20 chars>" in summary
    assert manager.get_credentials("mexc") is None


def test_summary_names_each_journal_a_run_writes(tmp_path: Path) -> None:
    """Dry and paper runs journal beside the configured file: the summary names all three."""
    manager = load(tmp_path, env={"ARB_JOURNAL_PATH": str(tmp_path / "j.sqlite3")})
    (line,) = [line for line in manager.summary().splitlines() if line.startswith("journal")]
    assert line.endswith(
        f"{tmp_path / 'j.sqlite3'} (--live, synchronous=FULL); dry runs {tmp_path / 'j-dry.sqlite3'}, "
        f"--paper {tmp_path / 'j-paper.sqlite3'}, --sim-urls {tmp_path / 'j-sim.sqlite3'} (synchronous=NORMAL)"
    )


def test_summary_shows_limits_written_as_toml_numbers_in_plain_decimals(tmp_path: Path) -> None:
    """Read exactly, a TOML number like 1e2 was shown as 1E+2."""
    manager = load(tmp_path, "[risk]\nmax_total_exposure_usd = 1e2\nmin_profit_margin_bps = 2.50\n")
    (line,) = [line for line in manager.summary().splitlines() if line.startswith("risk")]
    assert "exposure 100 USD" in line and "margin 2.5-" in line


def test_gateio_order_transport_reaches_the_connector_settings(tmp_path: Path) -> None:
    from arb.exchanges.connector import DEFAULT_ORDER_TRANSPORT, ConnectorSettings

    gate = load(tmp_path, "[exchanges.gateio]\norder_transport = 'rest'\n").get_exchange_config("gateio")
    assert gate.order_transport == "rest" and ConnectorSettings.from_exchange_config(gate).order_transport == "rest"
    mexc = load(tmp_path).get_exchange_config("mexc")
    assert mexc.order_transport is None
    assert ConnectorSettings.from_exchange_config(mexc).order_transport == DEFAULT_ORDER_TRANSPORT


def test_paper_inventory_defaults_and_per_market_overrides(tmp_path: Path) -> None:
    defaults = load(tmp_path).config.paper_balances
    assert defaults["mexc"] == {"USDT": Decimal("10000"), "BTC": Decimal("0.1"), "ETH": Decimal("2")}
    assert defaults["gateio_futures"] == {"USDT": Decimal("10000")}
    # A user table replaces one market's inventory; the others keep the shipped defaults.
    config = load(tmp_path, '[paper]\ngateio = { USDT = "250.5", SOL = 3 }\n').config
    assert config.paper_balances["gateio"] == {"USDT": Decimal("250.5"), "SOL": Decimal("3")}
    assert config.paper_balances["mexc"] == defaults["mexc"]


def test_paper_inventory_problems_are_reported_together(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        '[paper]\nmexc = { USDT = "-1", btc = "1", ETH = "lots" }\ngateio = "10000"\nkraken = { USDT = "1" }\n',
    )
    text = "\n".join(found)
    assert "paper.mexc" in text and "USDT = '-1': must be 0 or more" in text
    assert "'btc' is not an asset name" in text and "ETH = 'lots'" in text
    assert "paper.gateio" in text and "expected a table of asset" in text
    assert "paper.kraken: unknown key" in text


def test_a_symbol_or_asset_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    found = problems(
        tmp_path, text='[engine]\nsymbols = ["BTC/USDT\\n"]\n[paper]\nmexc = { "USDT\\n" = "10" }\n'
    )
    assert any("user.toml: engine.symbols:" in p for p in found), found
    assert any("user.toml: paper.mexc:" in p and "is not an asset name" in p for p in found), found


def test_the_minimum_margin_is_bounded_inside_the_compiled_scanner_range(tmp_path: Path) -> None:
    found = problems(tmp_path, env={"ARB_MIN_PROFIT_MARGIN_BPS": "1e19"})
    assert found == ("env ARB_MIN_PROFIT_MARGIN_BPS: '1e19': must be at most 1000000",)
    never = {"ARB_MIN_PROFIT_MARGIN_BPS": "1000000", "ARB_MAX_PROFIT_MARGIN_BPS": "1000000"}
    assert load(tmp_path, env=never).config.risk_limits.min_profit_margin_bps == 10**6


def test_the_maximum_margin_defaults_to_500_bps_and_must_not_be_below_the_minimum(tmp_path: Path) -> None:
    assert load(tmp_path).config.risk_limits.max_profit_margin_bps == 500
    assert load(tmp_path, env={"ARB_MAX_PROFIT_MARGIN_BPS": "10"}).config.risk_limits.max_profit_margin_bps == 10
    found = problems(tmp_path, text='[risk]\nmin_profit_margin_bps = "600"\n')
    assert found == (
        "risk.max_profit_margin_bps (500, "
        f"{default_config_path()}: risk.max_profit_margin_bps) must be at least risk.min_profit_margin_bps (600, "
        f"from {tmp_path / 'user.toml'}: risk.min_profit_margin_bps): no margin would pass both",
    )
    (problem,) = problems(tmp_path, env={"ARB_MAX_PROFIT_MARGIN_BPS": "9.99"})
    assert problem.startswith("risk.max_profit_margin_bps (9.99, env ARB_MAX_PROFIT_MARGIN_BPS) must be at least")
    assert problems(tmp_path, env={"ARB_MAX_PROFIT_MARGIN_BPS": "0"}) == (
        "env ARB_MAX_PROFIT_MARGIN_BPS: '0': must be greater than 0",
    )


def test_the_trading_rules_refresh_is_off_or_at_least_a_second(tmp_path: Path) -> None:
    assert load(tmp_path).config.instrument_refresh_interval_ms == 300_000
    assert load(tmp_path, env={"ARB_INSTRUMENT_REFRESH_INTERVAL_MS": "1000"}).config.instrument_refresh_interval_ms == 1000
    assert problems(tmp_path, env={"ARB_INSTRUMENT_REFRESH_INTERVAL_MS": "999"}) == (
        "env ARB_INSTRUMENT_REFRESH_INTERVAL_MS: '999': must be 0 (off) or an integer from 1000 to 86400000",
    )


def test_a_live_run_sends_signed_requests_to_a_remote_venue_only_over_tls(tmp_path: Path) -> None:
    """A live run's REST and websocket URLs carry the API key and signatures: plain http:// or ws://
    is refused, naming the key, unless the host is this machine. The configuration of a dry run is
    not refused for it: a paper run reads public data from the real venues, and a dry run's
    venues are checked where they are built (``ExchangeFactory``: loopback only)."""
    user = tmp_path / "user.toml"
    user.write_text(
        "[exchanges.mexc]\nrest_url = 'http://10.1.2.3:8080'\n"
        "[exchanges.gateio]\nws_url = 'ws://127.0.0.1:9000/ws'\nrest_url = 'https://api.gateio.ws/api/v4'\n"
    )
    with pytest.raises(ConfigurationError) as info:
        ConfigurationManager(user, environ={}).load_configuration(dry_run=False)
    refused = [p for p in info.value.problems if "only over https:// or wss://" in p]
    assert len(refused) == 1 and "exchanges.mexc.rest_url" in refused[0] and "'http://10.1.2.3:8080'" in refused[0]
    assert ConfigurationManager(user, environ={}).load_configuration(dry_run=True).dry_run


def test_summary_names_each_file_value_the_environment_replaced(tmp_path: Path) -> None:
    """An image's ARB_JOURNAL_PATH beats the mounted file's journal_path: said, not silent."""
    text = "[engine]\njournal_path = '/data/file.sqlite3'\nmax_data_age_ms = 80\n"
    env = {"ARB_JOURNAL_PATH": str(tmp_path / "env.sqlite3"), "ARB_MAX_DATA_AGE_MS": "80", "ARB_BUSY_POLL": "true"}
    manager = load(tmp_path, text, env)
    lines = [line for line in manager.summary().splitlines() if line.startswith("environment")]
    # Replacing a shipped default (busy_poll) is what the environment is for: not listed.
    assert lines == [
        f"environment     env ARB_JOURNAL_PATH over {tmp_path / 'user.toml'}: engine.journal_path",
        f"environment     env ARB_MAX_DATA_AGE_MS over {tmp_path / 'user.toml'}: engine.max_data_age_ms",
    ]
    assert manager.config.journal_path == str(tmp_path / "env.sqlite3")
    assert not [line for line in load(tmp_path, env=env).summary().splitlines() if line.startswith("environment")]


def test_a_live_run_warns_of_each_file_value_the_environment_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    user = tmp_path / "user.toml"
    user.write_text("[engine]\njournal_path = '/data/live.sqlite3'\n[metrics]\nport = 9100\n")
    env = {"ARB_JOURNAL_PATH": str(tmp_path / "env.sqlite3"), "ARB_BUSY_POLL": "true"}
    for dry_run in (True, False):
        manager = ConfigurationManager(user, environ=env)
        manager.load_configuration(dry_run=dry_run)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="arb.config"):
            manager.log_summary()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        # A dry run lists it in the summary only; a shipped default replaced is no warning.
        assert warnings == ([] if dry_run else [
            f"env ARB_JOURNAL_PATH over {user}: engine.journal_path: the environment replaces the --config file's value"
        ])


def test_a_kubernetes_service_link_is_refused_with_the_way_out(tmp_path: Path) -> None:
    found = problems(tmp_path, env={"ARB_METRICS_SERVICE_HOST": "10.0.0.7", "ARB_METRICS_PORT_9464_TCP_ADDR": "x"})
    assert len(found) == 2 and all("Kubernetes service link" in p and "enableServiceLinks: false" in p for p in found)
    assert problems(tmp_path, env={"ARB_MAX_DATA_AGE": "1"}) == (
        "env ARB_MAX_DATA_AGE: unknown setting; did you mean ARB_MAX_DATA_AGE_MS?",
    )


def test_a_url_with_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    """Connectors log their URLs: a password in one would be written to every log."""
    found = problems(tmp_path, "[exchanges.gateio]\nrest_url = 'https://proxyuser:PROXYPASS@proxy.example:8443'\n"
                               "ws_url = 'wss://token@ws.example/ws'\n"
                               "[exchanges.mexc]\nrest_url = 'https://u:S3CRET@proxy.example:99999'\n"  # bad port too
                               "ws_url = 'ftp://u:S3CRET@proxy.example/ws x'\n")  # bad scheme, a space
    assert len(found) == 4 and all("user name or password" in p for p in found)
    assert not any(secret in p for p in found for secret in ("PROXYPASS", "proxyuser", "token", "S3CRET"))


@pytest.mark.parametrize(
    "url", ["https://trader:S3cr/et@proxy.example.com", "wss://trader:Pa#ss@proxy.example.com/ws",
            "https://trader:S3c?et@proxy.example.com:8443/api"],
)
def test_a_password_holding_a_slash_question_mark_or_hash_is_refused_without_echoing_it(
    tmp_path: Path, url: str
) -> None:
    """Those characters end the host part of a URL, so the "@" after them would be missed and the
    refusal for the port that is not a number would repeat the whole value, password and all."""
    key = "ws_url" if url.startswith("wss") else "rest_url"
    found = problems(tmp_path, f"[exchanges.mexc]\n{key} = '{url}'\n")
    assert found == (
        f"{tmp_path / 'user.toml'}: exchanges.mexc.{key}: a URL with an @ in it (a user name or password): "
        "not accepted, it would appear in logs",
    )


@pytest.mark.parametrize("host", ["a..b", ".a", "...", ".", "a" * 64 + ".example"])
def test_a_metrics_host_with_an_empty_or_overlong_label_is_refused(tmp_path: Path, host: str) -> None:
    """The name is looked up through IDNA when the server starts, which cannot encode it."""
    assert problems(tmp_path, f"[metrics]\nhost = '{host}'\n") == (
        f"{tmp_path / 'user.toml'}: metrics.host: {host!r}: each part of a host name between dots must be "
        "1 to 63 characters long",
    )


@pytest.mark.parametrize("host", ["a:b", "127.0.0.1:9100", ":::"])
def test_a_metrics_host_with_a_colon_must_be_an_ipv6_address(tmp_path: Path, host: str) -> None:
    """Refused when the file is read, not only when the server fails to listen at start-up."""
    assert problems(tmp_path, f"[metrics]\nhost = '{host}'\n") == (
        f"{tmp_path / 'user.toml'}: metrics.host: {host!r}: has a colon but is not an IPv6 address (give the "
        "port as metrics.port)",
    )


@pytest.mark.parametrize("host", ["metrics.local.", "fe80::1", "a" * 63 + ".example", "::1", "0.0.0.0"])
def test_a_metrics_host_of_names_ip_addresses_or_a_fully_qualified_name_is_taken(tmp_path: Path, host: str) -> None:
    assert load(tmp_path, f"[metrics]\nhost = '{host}'\n").config.metrics.host == host


def test_a_file_nested_too_deeply_is_named_not_a_traceback(tmp_path: Path) -> None:
    found = problems(tmp_path, "[engine]\nsymbols = " + "[" * 5000 + "\n")
    assert found == (f"{tmp_path / 'user.toml'}: not readable: nested too deeply",)


def test_a_safety_switch_off_is_warned_about_naming_where_it_was_set(caplog: pytest.LogCaptureFixture) -> None:
    configuration = ConfigurationManager(None, environ={"ARB_ENABLE_RISK_CHECKS": "0"})
    configuration.load_configuration(dry_run=True)
    with caplog.at_level(logging.WARNING, logger="arb.config"):
        configuration.log_summary()
    assert "engine.enable_risk_checks is false (env ARB_ENABLE_RISK_CHECKS): no position, exposure" in caplog.text
    assert "enable_circuit_breakers" not in caplog.text
