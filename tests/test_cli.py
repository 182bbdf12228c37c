"""The command line, run as a subprocess: exit codes and messages."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

REPO_DEFAULTS = Path(__file__).resolve().parent.parent / "config" / "default.toml"


def arb(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "arb", *args],
        cwd=cwd,
        env=clean,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_reports_the_compiled_core(tmp_path: Path) -> None:
    result = arb("version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "compiled core: loaded" in result.stdout
    assert "arb_core.book" in result.stdout


def test_the_readme_synopsis_names_every_option_of_every_command() -> None:
    import argparse
    import re

    from arb.cli import _build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("## Command line\n\n```\n", 1)[1].split("```", 1)[0]
    synopsis: dict[str, str] = {}
    command = ""
    for line in block.splitlines():  # a command's line, then its continuation lines
        match = re.match(r"python -m arb (\S+)", line)
        command = match.group(1) if match else command
        synopsis[command] = synopsis.get(command, "") + line
    (commands,) = [a for a in _build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [
        f"{name} {option}" for name, parser in commands.choices.items()
        for action in parser._actions for option in action.option_strings
        if option.startswith("--") and option != "--help"
        and not re.search(re.escape(option) + r"(?![\w-])", synopsis.get(name, ""))
    ]
    assert not missing


def test_check_config_passes_on_the_shipped_defaults(tmp_path: Path) -> None:
    result = arb("check-config", str(REPO_DEFAULTS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_five_mistakes_give_five_lines_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        "[engine]\n"
        "symbols = ['BTC-USDT']\n"  # 1 malformed symbol
        "max_data_age_ms = -100\n"  # 2 negative
        "[risk]\n"
        "max_position_size_usd = '1000'\n"  # 3 exposure (500 by default) below position
        "max_daily_loss = '5'\n"  # 4 unknown key (typo)
        "[exchanges.kraken]\n"  # 5 unknown venue
        "enabled = true\n"
    )
    result = arb("check-config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(lines) == 5, result.stderr
    assert result.stderr.startswith("arb: 5 configuration problems:")
    for fragment in ("'BTC-USDT' is not a symbol", "-100: must be", "must be at least", "unknown key", "'kraken'"):
        assert any(fragment in line for line in lines), fragment


def test_bad_env_override_exits_2(tmp_path: Path) -> None:
    result = arb("check-config", cwd=tmp_path, env={"ARB_MAX_DATA_AGE_MS": "soon"})
    assert result.returncode == 2
    assert "env ARB_MAX_DATA_AGE_MS: 'soon': expected an integer" in result.stderr


def test_run_validates_config_before_anything_else(tmp_path: Path) -> None:
    result = arb("run", "--config", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "missing.toml: file not found" in result.stderr


def test_check_config_names_a_file_the_system_cannot_open_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = arb("check-config", "file/cfg.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "file/cfg.toml: cannot be read: Not a directory" in result.stderr


def test_run_refuses_a_journal_path_naming_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A live run opened the venues, then failed with exit 1 at the journal, leaving an intent log beside
    the file; every run now refuses it before it opens anything, as it does a directory there."""
    (tmp_path / "notes.txt").write_text("not a journal\n")
    result = arb("run", "--duration", "1", cwd=tmp_path, env={"ARB_JOURNAL_PATH": "notes.txt"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "engine.journal_path 'notes.txt' (env ARB_JOURNAL_PATH): is not an SQLite database" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_run_is_a_dry_run_on_the_simulated_venues_and_prints_a_summary(tmp_path: Path) -> None:
    result = arb("run", "--duration", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "opportunities" in result.stdout.splitlines()[0]  # the status line, once a second
    summary = result.stdout[result.stdout.index("arb run summary (dry run") :]
    detected = int(summary.split("opportunities detected")[1].split()[0])
    assert detected >= 1, result.stdout
    for field in ("opportunities executed", "realized PnL", "latency cycle", "circuit breakers", "book resyncs"):
        assert field in summary
    assert (tmp_path / "arb-journal-dry.sqlite3").exists()


def test_live_without_keys_exits_2_naming_the_variables(tmp_path: Path) -> None:
    result = arb("run", "--live", "--duration", "1", cwd=tmp_path)
    assert result.returncode == 2
    for name in ("MEXC_API_KEY", "MEXC_SECRET_KEY", "GATEIO_API_KEY", "GATEIO_SECRET_KEY"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_paper_reads_the_configured_venue_urls_without_keys(tmp_path: Path) -> None:
    # Nothing listens on port 9 of loopback: the paper run fails there, with no keys asked for.
    config = tmp_path / "paper.toml"
    config.write_text(
        "".join(
            f'[exchanges.{venue}]\nrest_url = "http://127.0.0.1:9"\nws_url = "ws://127.0.0.1:9"\n'
            f'futures_rest_url = "http://127.0.0.1:9"\nfutures_ws_url = "ws://127.0.0.1:9"\n'
            for venue in ("mexc", "gateio")
        )
    )
    result = arb("run", "--paper", "--config", str(config), "--duration", "1", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "127.0.0.1:9" in result.stderr and "Traceback" not in result.stderr
    assert "API_KEY" not in result.stderr and "not built" not in result.stderr


def test_sim_prints_the_venue_urls_and_stops_after_duration(tmp_path: Path) -> None:
    result = arb("sim", "--duration", "1", "--seed", "7", "--matching-delay-ms", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.rsplit(" ", 1)[0] for line in lines] == [
        f"{venue} {market} {kind}" for venue in ("gateio", "mexc") for market in ("spot", "futures") for kind in ("rest", "ws")
    ]
    for line in lines:
        url = line.rsplit(" ", 1)[1]
        assert url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")), line


def test_sim_refuses_an_unknown_symbol(tmp_path: Path) -> None:
    result = arb("sim", "--duration", "1", "--symbols", "DOGE/USDT", cwd=tmp_path)
    assert result.returncode == 2
    assert "DOGE" in result.stderr


def test_sim_refuses_a_negative_matching_delay(tmp_path: Path) -> None:
    result = arb("sim", "--duration", "1", "--matching-delay-ms", "-5", cwd=tmp_path)
    assert result.returncode == 2
    assert "--matching-delay-ms: must be from 0 to 60000 ms, got '-5'" in result.stderr


def test_output_to_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write, as with ``| head`` done early
    try:
        process = subprocess.run(
            [sys.executable, "-m", "arb", "version"], cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE,
            text=True, timeout=60,
        )
    finally:
        os.close(write_end)
    assert process.returncode == 1
    assert process.stderr == ""


def test_a_run_whose_output_reader_went_away_trades_on_and_prints_its_summary_to_stderr(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # ``| head -1`` done before the first status line
    try:
        process = subprocess.run(
            [sys.executable, "-m", "arb", "run", "--duration", "2"], cwd=tmp_path, stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("ARB_")},
        )
    finally:
        os.close(write_end)
    assert process.returncode == 0, process.stderr
    assert "status output closed" in process.stderr and "Traceback" not in process.stderr
    assert "arb run summary (dry run" in process.stderr and "shutdown                 6 steps, all OK" in process.stderr


def test_live_and_paper_are_exclusive(tmp_path: Path) -> None:
    result = arb("run", "--live", "--paper", cwd=tmp_path)
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


@pytest.mark.parametrize("duration", ["0", "-3", "abc"])
def test_bad_duration_is_a_usage_error(tmp_path: Path, duration: str) -> None:
    result = arb("run", "--duration", duration, cwd=tmp_path)
    assert result.returncode == 2
    assert "--duration" in result.stderr


def test_keys_encrypt_round_trip(tmp_path: Path) -> None:
    key = arb("keys", "generate", cwd=tmp_path).stdout.strip()
    result = arb("keys", "encrypt", cwd=tmp_path, env={"ENCRYPTION_KEY": key}, stdin="my-secret\n")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert "my-secret" not in result.stdout
    assert Fernet(key.encode()).decrypt(token.encode()) == b"my-secret"


@pytest.mark.parametrize("typed", [b"my-typed-secret\n", b"\x04"])
def test_keys_encrypt_on_a_terminal_does_not_echo_the_secret(tmp_path: Path, typed: bytes) -> None:
    """Typed or pasted at a terminal, the secret was echoed and stayed on the screen and in its scrollback."""
    import pty
    import select
    import time

    key = arb("keys", "generate", cwd=tmp_path).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    env["ENCRYPTION_KEY"] = key
    pid, terminal = pty.fork()  # the child's controlling terminal, as a user's shell gives it
    if pid == 0:
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "arb", "keys", "encrypt"], env)
    shown = b""

    def read(until: bytes | None) -> bool:
        """What the terminal shows, until ``until`` appears (True) or the child ends or 30 s pass."""
        nonlocal shown
        deadline = time.monotonic() + 30
        while until is None or until not in shown:
            if not select.select([terminal], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return False
            try:
                chunk = os.read(terminal, 1024)
            except OSError:  # the child is gone and its terminal closed
                return False
            if not chunk:
                return False
            shown += chunk
        return True

    try:
        read(b"not shown")  # the prompt: echo is off from here
        os.write(terminal, typed)
        read(None)
    finally:
        _, status = os.waitpid(pid, 0)
    if typed == b"\x04":  # Ctrl-D, nothing typed: refused by name, no traceback
        assert os.waitstatus_to_exitcode(status) == 2 and b"standard input: empty" in shown, shown
        assert b"Traceback" not in shown
        return
    assert os.waitstatus_to_exitcode(status) == 0, shown
    assert b"my-typed-secret" not in shown
    token = shown.split(b"not shown): ", 1)[1].split()[0]
    assert Fernet(key.encode()).decrypt(token) == b"my-typed-secret"


def test_keys_encrypt_refuses_a_secret_the_start_would_refuse(tmp_path: Path) -> None:
    key = arb("keys", "generate", cwd=tmp_path).stdout.strip()
    result = arb("keys", "encrypt", cwd=tmp_path, env={"ENCRYPTION_KEY": key}, stdin="my secret\n")
    assert result.returncode == 2 and result.stdout == ""
    assert "the secret contains whitespace, control or non-ASCII characters" in result.stderr
    assert "my secret" not in result.stderr
    result = arb("keys", "encrypt", cwd=tmp_path, env={"ENCRYPTION_KEY": key}, stdin='"my-secret"\n')
    assert result.returncode == 2 and result.stdout == ""
    assert 'the secret is quoted (starts and ends with "); give it without the quotes' in result.stderr
    assert "my-secret" not in result.stderr


def test_a_quoted_key_is_refused_naming_the_variable_not_the_value(tmp_path: Path) -> None:
    env = {"GATEIO_API_KEY": '"visible-api-key"', "GATEIO_SECRET_KEY": "visible-secret"}
    result = arb("check-config", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "env GATEIO_API_KEY: is quoted (starts and ends with \"); give the value without the quotes" in result.stderr
    assert "visible" not in result.stdout + result.stderr


def test_keys_encrypt_without_key_exits_2(tmp_path: Path) -> None:
    result = arb("keys", "encrypt", cwd=tmp_path, stdin="x\n")
    assert result.returncode == 2
    assert "ENCRYPTION_KEY: missing" in result.stderr


def test_keys_show_masks_values(tmp_path: Path) -> None:
    env = {"MEXC_API_KEY": "visible-api-key", "MEXC_SECRET_KEY": "visible-secret"}
    result = arb("keys", "show", cwd=tmp_path, env=env)
    assert result.returncode == 0
    assert "visible" not in result.stdout + result.stderr
    assert "mexc: api key <15 chars>" in result.stdout
    assert "gateio: no keys" in result.stdout


def test_keys_show_reports_every_venues_problem_and_exits_2(tmp_path: Path) -> None:
    env = {
        "MEXC_API_KEY": "visible-api-key",  # its secret missing
        "GATEIO_API_KEY_ENCRYPTED": "visible-token", "GATEIO_SECRET_KEY_ENCRYPTED": "visible-token-2",
        "ENCRYPTION_KEY": "visible-not-a-key",
    }
    result = arb("keys", "show", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("arb: 2 configuration problems:"), result.stderr
    assert "env MEXC_SECRET_KEY: missing" in result.stderr
    assert "env ENCRYPTION_KEY: not a valid Fernet key" in result.stderr
    assert "visible" not in result.stdout + result.stderr


def test_run_log_never_contains_secrets(tmp_path: Path) -> None:
    env = {"GATEIO_API_KEY": "visible-api-key", "GATEIO_SECRET_KEY": "visible-secret"}
    result = arb("run", "--log-level", "DEBUG", "--duration", "1", cwd=tmp_path, env=env)
    assert "effective configuration" in result.stderr
    assert "visible" not in result.stdout + result.stderr


def test_event_loop_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from arb.cli import new_event_loop
    from arb.errors import ConfigurationError

    monkeypatch.delenv("ARB_EVENT_LOOP", raising=False)
    loop = new_event_loop()
    assert type(loop) is asyncio.SelectorEventLoop
    loop.close()
    uvloop = pytest.importorskip("uvloop")
    for value, expected in (("uvloop", uvloop.Loop), ("asyncio", asyncio.SelectorEventLoop)):
        monkeypatch.setenv("ARB_EVENT_LOOP", value)
        loop = new_event_loop()
        try:
            assert type(loop) is expected, value
        finally:
            loop.close()
    monkeypatch.setenv("ARB_EVENT_LOOP", "tokio")
    with pytest.raises(ConfigurationError, match="ARB_EVENT_LOOP='tokio'"):
        new_event_loop()


@pytest.mark.parametrize("command", [("check-config",), ("doctor", "--sim")])
def test_check_config_and_doctor_refuse_the_event_loop_run_refuses(tmp_path: Path, command: tuple[str, ...]) -> None:
    """Both said OK with ARB_EVENT_LOOP=bad, which run then refused with exit 2."""
    result = arb(*command, cwd=tmp_path, env={"ARB_EVENT_LOOP": "bad"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ARB_EVENT_LOOP='bad': must be one of uvloop, asyncio" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_run_accepts_the_event_loop_variable(tmp_path: Path) -> None:
    result = arb("run", "--duration", "1", cwd=tmp_path, env={"ARB_EVENT_LOOP": "asyncio"})
    assert result.returncode == 0, result.stderr


def test_a_dry_run_of_a_symbol_the_simulated_venues_do_not_list_is_a_configuration_error(tmp_path: Path) -> None:
    result = arb("run", "--headless", "--duration", "1", cwd=tmp_path, env={"ARB_SYMBOLS": "SOL/USDT"})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "engine.symbols: simulator: no default instrument for 'SOL'" in result.stderr
    assert "--paper" in result.stderr


def test_a_symbol_a_venue_does_not_list_exits_2_naming_the_setting_and_every_venue(tmp_path: Path) -> None:
    """It exited 1 with `arb: mexc: no instrument 'SOL/USDT'`: a runtime error, the first venue only."""
    import time

    urls = tmp_path / "urls.json"
    sim = subprocess.Popen([sys.executable, "-m", "arb", "sim", "--urls-out", str(urls), "--duration", "60"],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not urls.exists() and sim.poll() is None:
            time.sleep(0.05)
        result = arb("run", "--paper", "--sim-urls", str(urls), "--duration", "1", cwd=tmp_path,
                     env={"ARB_SYMBOLS": "BTC/USDT,SOL/USDT"})
    finally:
        sim.terminate()
        sim.wait(10)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    for market in ("mexc", "gateio"):
        assert f"engine.symbols: {market}: no instrument 'SOL/USDT'" in result.stderr


@pytest.mark.parametrize(("command", "code"), [(["run", "--duration", "1"], 2), (["check-config"], 0)])
def test_a_journal_path_in_a_missing_directory_exits_2_naming_the_setting(
    tmp_path: Path, command: list[str], code: int
) -> None:
    """It exited 1, `cannot open its intent log ... No such file or directory`, naming no setting.
    check-config says so without failing: the file may be meant for another machine (the
    deployment's own, checked in CI)."""
    missing = tmp_path / "nonexistent" / "j.sqlite3"
    result = arb(*command, cwd=tmp_path, env={"ARB_JOURNAL_PATH": str(missing)})
    assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
    assert (f"engine.journal_path '{missing}' (env ARB_JOURNAL_PATH): its directory {missing.parent} does not exist"
            in result.stderr)


def test_check_config_passes_the_deployments_own_file(tmp_path: Path) -> None:
    """Its journal lives in the image's /var/lib/arb, which this machine need not have."""
    result = arb("check-config", str(Path(__file__).parents[1] / "deploy" / "arb.toml"), cwd=tmp_path)
    assert result.returncode == 0 and "configuration OK" in result.stdout, result.stderr


def test_approvals_leaves_a_file_that_is_not_a_journal_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arb.cli import main

    for name, content in (("empty.sqlite3", b""), ("notes.txt", b"not a database\n")):
        path = tmp_path / name
        path.write_bytes(content)
        assert main(["approvals", "--journal", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"approvals: journal {path}: not a" in err and "Traceback" not in err
        assert path.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(name)) == [name]


def flagged_journal(tmp_path: Path) -> Path:
    """A journal holding one residual flagged for manual approval."""
    from arb.journal import Journal

    path = tmp_path / "journal.sqlite3"
    with Journal(path) as journal:
        journal.record_recovery_step("o1", "manual_approval", {"reason": "residual past its bound", "residual": "0.5"})
    return path


def test_approvals_refuses_a_journal_with_a_damaged_page_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad sector in a table opens fine; the first read of it died with a bare sqlite3 traceback."""
    import sqlite3

    from arb.cli import main

    path = flagged_journal(tmp_path)
    db = sqlite3.connect(path)
    ((page,),) = db.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'recovery_steps'").fetchall()
    (page_size,) = db.execute("PRAGMA page_size").fetchone()
    db.close()
    with open(path, "r+b") as file:
        file.seek((page - 1) * page_size)
        file.write(b"\xff" * page_size)
    assert main(["approvals", "--journal", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"journal {path}: database disk image is malformed: restore it from a backup" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(("detail", "named"), [
    ('{"reason": "r", "resid', "detail: not a JSON object: "),
    ('{"reason": "r", "residual": "NaN"}', "detail.residual 'NaN': not a finite number"),
])
def test_approvals_refuses_a_recovery_step_cut_short_naming_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detail: str, named: str
) -> None:
    """A flag's detail cut short (a failing disk, an edit by hand) ended in a bare msgspec traceback;
    a residual that is no amount was listed as any other."""
    import sqlite3

    from arb.cli import main

    path = flagged_journal(tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE recovery_steps SET detail = ?", (detail,))
    db.close()
    assert main(["approvals", "--journal", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"journal {path}: recovery_steps row 1: {named}" in err
    assert "Traceback" not in err


def test_approvals_lists_and_acknowledges_what_awaits_an_operator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from arb.cli import main
    from arb.journal import Journal

    path = tmp_path / "journal.sqlite3"
    assert main(["approvals", "--journal", str(path)]) == 2  # no journal there
    assert "approvals: no journal at" in capsys.readouterr().err
    assert main(["export", "fills", "--journal", str(path)]) == 2  # a usage error too, not a failure
    assert "export: no journal at" in capsys.readouterr().err and not path.exists()
    with Journal(path) as journal:
        journal.record_recovery_step("o1", "manual_approval", {"reason": "residual past its bound", "residual": "0.5"})
        journal.record_recovery_step("o2", "manual_approval", {"reason": "unknown outcome", "residual": "0"})
        assert main(["approvals", "--journal", str(path)]) == 2  # a running engine holds it
        assert "in use by a running engine" in capsys.readouterr().err
    assert main(["approvals", "--journal", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["o1    residual 0.5  residual past its bound", "o2    residual 0  unknown outcome"]
    assert main(["approvals", "--journal", str(path), "--acknowledge", "o1"]) == 0
    assert main(["approvals", "--journal", str(path), "--acknowledge", "o1"]) == 2
    assert "nothing awaits approval for 'o1'" in capsys.readouterr().err
    with Journal(path) as journal:
        assert [(opp, detail["residual"]) for opp, _, detail in journal.awaiting_approval()] == [("o2", 0)]
        assert journal.recovery_steps("o1")[-1] == ("acknowledged", {"by": "operator"})


def test_approvals_leaves_an_older_journal_for_the_engine_that_runs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Listing opened the journal to write: it upgraded an older journal's schema in place, past what the
    deployed engine reads, and moved its intent log into the database."""
    import sqlite3
    from contextlib import closing
    from decimal import Decimal

    from arb.cli import main
    from arb.exchanges.models import OrderRequest, OrderType
    from arb.journal import SCHEMA_VERSION, Journal
    from arb.types import ExchangeName, OrderSide

    path, log = tmp_path / "journal.sqlite3", tmp_path / "journal.sqlite3-intents"
    order = OrderRequest(symbol="BTC/USDT", side=OrderSide.BUY, type=OrderType.LIMIT, quantity=Decimal("0.001"),
                         price=Decimal("60000"), client_order_id="k1")
    with Journal(path) as journal:
        journal.record_recovery_step("o1", "manual_approval", {"reason": "residual past its bound", "residual": "0.5"})
        journal.record_intents("o2", [("buy", ExchangeName.GATEIO, order)], deferred=True)
        logged = log.read_bytes()
    log.write_bytes(logged)  # as a crash leaves it: the engine's next start moves it in
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA user_version=6")

    def version() -> int:
        with closing(sqlite3.connect(path)) as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    assert main(["approvals", "--journal", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["o1    residual 0.5  residual past its bound"]
    assert version() == 6 and log.read_bytes() == logged
    assert main(["approvals", "--journal", str(path), "--acknowledge", "o1"]) == 2
    assert (f"approvals: the journal {path} is of schema version 6; acknowledging would upgrade it to version {SCHEMA_VERSION}"
            in capsys.readouterr().err)
    assert version() == 6 and log.read_bytes() == logged
    with Journal(path):  # the engine of this arb upgrades it
        pass
    assert main(["approvals", "--journal", str(path), "--acknowledge", "o1"]) == 0
    assert main(["approvals", "--journal", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["arb approvals: o1 acknowledged; it no longer awaits approval at "
                                                    "the next start"]


def test_a_report_directory_that_cannot_be_written_is_refused_before_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the report directory would go")
    for command in (("run", "--duration", "1"), ("backtest", str(blocker))):
        result = arb(*command, "--report", str(blocker / "report"), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"--report {blocker / 'report'}: cannot create the directory" in result.stderr
        assert "Traceback" not in result.stderr


def test_sim_names_a_urls_file_whose_directory_is_missing(tmp_path: Path) -> None:
    result = arb("sim", "--duration", "1", "--urls-out", str(tmp_path / "missing" / "urls.json"), cwd=tmp_path)
    assert result.returncode == 2
    assert "--urls-out" in result.stderr and "its directory does not exist" in result.stderr
    assert "cannot listen" not in result.stderr


def test_sim_names_a_urls_file_it_cannot_write(tmp_path: Path) -> None:
    """The write's error was caught as a socket's: "cannot listen: [Errno 36] File name too long"
    (its hidden partial file's name, past the file system's limit), exit 1."""
    path = tmp_path / f"{'u' * 250}.json"
    result = arb("sim", "--duration", "1", "--urls-out", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"arb sim: --urls-out: cannot write the URLs file {path}: File name too long" in result.stderr
    assert "cannot listen" not in result.stderr and not path.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port-base", "70000"], "port base 70000: 2 venues listen on 3 ports each from it, so it must be from 1 to"),
        (["--port-base", "-1"], "port base -1"),
        (["--replay", "missing.arbrec"], "--replay missing.arbrec: no such file"),
        (["--urls-out", "."], "--urls-out .: is a directory"),
    ],
)
def test_sim_names_a_bad_port_replay_file_or_urls_file(tmp_path: Path, args: list[str], expected: str) -> None:
    result = arb("sim", "--duration", "1", *args, cwd=tmp_path)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--rotate-mb", "inf"], "--rotate-mb: must be from 1e-06 to 1000000 MB, got 'inf'"),
        (["--rotate-mb", "1e-9"], "--rotate-mb: must be from 1e-06 to 1000000 MB"),
        (["--rotate-hours", "1e400"], "--rotate-hours: must be from 0.000277778 to 8784 hours"),
    ],
)
def test_record_refuses_rotation_it_cannot_keep(tmp_path: Path, args: list[str], expected: str) -> None:
    result = arb("record", "--out", str(tmp_path / "r.arbrec"), "--duration", "1", *args, cwd=tmp_path)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("report", [False, True])
def test_only_a_run_that_writes_a_report_keeps_every_execution_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, report: bool
) -> None:
    """The report's trade log holds each execution of the run; without ``--report`` the run keeps
    no such log (the monitor's own results are bounded), so a long live run does not grow it."""
    import arb.controller
    from arb.cli import main
    from arb.replay.report import LoggingMonitor

    monitors: list[object] = []

    class Stop(Exception):
        pass

    def capture(manager: object, **kwargs: object) -> None:
        monitors.append(kwargs.get("monitor"))
        raise Stop

    monkeypatch.setattr(arb.controller, "ArbitrageController", capture)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Stop):
        main(["run", "--duration", "1", *(["--report", str(tmp_path / "report")] if report else [])])
    (monitor,) = monitors
    assert isinstance(monitor, LoggingMonitor) is report and (monitor is None) is not report


def _catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` in ``/proc/PID/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


# How the command starts: ``python -m arb``, and the installed ``arb`` command's entry point.
LAUNCHERS = {
    "python -m arb": ["-m", "arb"],
    "arb": ["-c", "import sys; from importlib.metadata import entry_points; "
                  "sys.exit(entry_points(group='console_scripts')['arb'].load()())"],
}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see a process's signal handlers")
@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("command", [["run", "--duration", "30"], ["sim", "--duration", "30"]])
def test_a_stop_sent_while_python_loads_is_not_lost(tmp_path: Path, command: list[str], launcher: str) -> None:
    """As a container's first process, which the kernel gives no signal it has no handler for:
    started with SIGTERM ignored, a SIGTERM sent before the engine has written a line stops it."""
    import select
    import signal
    import time

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    child = subprocess.Popen(
        [sys.executable, *LAUNCHERS[launcher], *command], cwd=tmp_path, env=clean, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    try:
        deadline = time.monotonic() + 30
        while not _catches(child.pid, signal.SIGTERM) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        # Taken before the configuration is read and anything said (the start-up's own handlers come later).
        assert select.select([child.stdout, child.stderr], [], [], 0)[0] == []
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    expected = "while starting; nothing was traded" if command[0] == "run" else "received SIGTERM before starting"
    assert expected in err and "Traceback" not in err


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_running_simulator_stopped_by_a_signal_closes_and_exits_0(tmp_path: Path, signum: str) -> None:
    """Started with SIGTERM ignored, as a container's first process is: the simulator handles the
    stop itself rather than leaving it to a default that never comes (or ends it with 143)."""
    import signal

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    child = subprocess.Popen(
        [sys.executable, "-m", "arb", "sim"], cwd=tmp_path, env=clean, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    try:
        assert child.stdout is not None
        while "127.0.0.1" not in child.stdout.readline():  # serving
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
        child.send_signal(getattr(signal, signum))
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert f"stopped by {signum}" in out and "Traceback" not in err


@pytest.mark.parametrize(("name", "noted"), [
    ("SIGTERM", "received SIGTERM after the shutdown (duration elapsed)"),
    ("SIGUSR1", "received SIGUSR1 after the run ended: the kill switch has nothing to stop"),
])
def test_a_stop_after_the_runs_shutdown_steps_still_gets_its_summary_and_report(
    tmp_path: Path, name: str, noted: str
) -> None:
    """The event loop gave SIGTERM (and the kill switch's SIGUSR1) its default back with the run's
    handlers: one sent once the shutdown's steps had run, while the summary and the report were
    written, killed the run unreported (-15, -10; SIGINT: a KeyboardInterrupt traceback)."""
    script = (
        "import os, signal, sys\n"
        "from arb.shutdown import hold_stop_signals\n"
        "hold_stop_signals()\n"
        "from arb.controller import ArbitrageController\n"
        "run = ArbitrageController.run\n"
        "async def run_then_stopped(self, *args, **kwargs):\n"
        "    summary = await run(self, *args, **kwargs)\n"
        f"    os.kill(os.getpid(), signal.{name})  # the steps have run; the summary and report not yet written\n"
        "    return summary\n"
        "ArbitrageController.run = run_then_stopped\n"
        "from arb.cli import main\n"
        "sys.exit(main(['run', '--headless', '--duration', '0.5', '--report', 'report']))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env=clean)
    assert result.returncode == 0, result.stderr[-3000:]
    assert noted in result.stderr
    assert "arb run summary (dry run" in result.stderr and (tmp_path / "report" / "summary.json").is_file()


def test_a_run_called_in_process_gives_the_signals_back_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run goes on handling the stop and kill-switch signals after its shutdown, until it has
    reported; a program that called it in its own process then found Ctrl-C swallowed, and the
    next one ending the process at once."""
    import signal

    from arb.cli import main

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
    before = {sig: signal.getsignal(sig) for sig in signals}
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--headless", "--duration", "0.2"]) == 0
    assert {sig: signal.getsignal(sig) for sig in signals} == before


def test_a_run_called_in_a_worker_thread_ends_with_its_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Giving the signals back raised ValueError outside the main thread (where signals are not
    handled), in place of the run's exit code or its configuration refusal."""
    import threading

    from arb.cli import main

    monkeypatch.chdir(tmp_path)
    codes: list[int] = []
    for argv in (["run", "--headless", "--duration", "0.2"], ["run", "--headless", "--config", "missing.toml"]):
        worker = threading.Thread(target=lambda argv=argv: codes.append(main(argv)))
        worker.start()
        worker.join(60)
    assert codes == [0, 2]


@pytest.mark.parametrize(("flagged", "code"), [(0, 0), (1, 1)])
def test_a_run_stopped_while_starting_exits_1_when_its_start_up_flagged_a_residual(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flagged: int, code: int
) -> None:
    """A start-up's flags fail the run; stopped right after them, it exited 0 all the same."""
    from arb.cli import main
    from arb.controller import ArbitrageController
    from arb.errors import StartupInterrupted

    async def stopped(self: ArbitrageController, dry_run: bool = True, *, paper: bool = False) -> None:
        raise StartupInterrupted("received SIGTERM while starting; nothing was traded", flagged=flagged)

    monkeypatch.setattr(ArbitrageController, "initialize", stopped)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--headless", "--duration", "1"]) == code
    assert "arb: received SIGTERM while starting; nothing was traded" in capsys.readouterr().err


def test_sigterm_raises_where_the_program_is_once_released() -> None:
    """Other commands (a backtest, an export) stop on SIGTERM as on Ctrl-C, exit code 143, even
    where its default would be ignored."""
    import signal

    script = (
        "import os, signal, sys, time\n"
        "from arb.shutdown import Terminated, release_stop_signals\n"
        "release_stop_signals()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
        "except Terminated:\n"
        "    sys.exit(143)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/",
        preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN),
    )
    assert result.returncode == 143, result.stderr


def test_a_recording_that_failed_before_recording_anything_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Left behind, its empty file made the same command, corrected, fail with 'File exists'."""
    from arb.cli import main
    from arb.instruments import InstrumentError
    from arb.replay import recorder

    async def unlisted(*args: object, **kwargs: object) -> dict[str, int]:
        raise InstrumentError("gateio: no instrument 'SOL/USDT'")

    monkeypatch.setattr(recorder, "record_markets", unlisted)
    monkeypatch.chdir(tmp_path)
    assert main(["record", "--out", "x.arb", "--venues", "gateio", "--duration", "1"]) == 1
    assert "no instrument 'SOL/USDT'" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_sim_and_record_serve_a_dry_runs_dislocations_unless_told_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without them the synthetic market never moves one venue away from the others: an engine
    attached to `sim`, or a backtest of a `record --sim` file, found no opportunity."""
    from arb.cli import main
    from arb.replay import recorder
    from arb.sim import cluster
    from arb.sim.cluster import DISLOCATIONS_PER_MINUTE, SimConfig

    served: list[SimConfig] = []

    class Served(cluster.SimCluster):
        def __init__(self, config: SimConfig | None = None, **kwargs: Any) -> None:
            assert config is not None
            served.append(config)
            super().__init__(config, **kwargs)

    async def nothing(*args: object, **kwargs: object) -> dict[str, int]:
        return {}

    monkeypatch.setattr(cluster, "SimCluster", Served)
    monkeypatch.setattr(recorder, "record_markets", nothing)
    monkeypatch.chdir(tmp_path)
    assert main(["sim", "--duration", "0.1"]) == 0
    assert main(["sim", "--duration", "0.1", "--dislocations", "0"]) == 0
    assert main(["record", "--out", "a.arb", "--duration", "0.1"]) == 0
    assert main(["record", "--out", "b.arb", "--duration", "0.1", "--dislocations", "7"]) == 0
    assert [c.dislocations_per_minute for c in served] == [DISLOCATIONS_PER_MINUTE, 0, DISLOCATIONS_PER_MINUTE, 7]


@pytest.mark.parametrize("command", [["export", "fills"], ["approvals"]])
def test_a_file_that_is_no_journal_is_a_usage_error(tmp_path: Path, command: list[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    result = arb(*command, "--journal", str(notes), cwd=tmp_path)
    assert result.returncode == 2 and "not an SQLite database" in result.stderr and "Traceback" not in result.stderr
    assert notes.read_text() == "not a database"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_the_live_view_on_an_ascii_terminal_runs_to_its_summary(tmp_path: Path) -> None:
    """At 100 columns the view shortens cells with "…": on an ASCII terminal that raised in its
    thread, every log line after it became a logging error, and the run ended in a traceback, exit 1,
    without its summary."""
    import fcntl
    import struct
    import termios

    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ARB_", "MEXC_", "GATEIO_", "ENCRYPTION_"))}
    child = subprocess.Popen(
        [sys.executable, "-m", "arb", "run", "--duration", "3"], cwd=tmp_path, stdin=terminal, stdout=terminal,
        stderr=terminal, env={**clean, "PYTHONIOENCODING": "ascii", "TERM": "xterm"}, close_fds=True,
    )
    os.close(terminal)
    output = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal's other end closed: the run ended
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert child.wait(timeout=60) == 0, output.decode("ascii", "replace")[-2000:]
    text = output.decode("ascii", "replace")
    assert "arb run summary (dry run" in text and "Logging error" not in text and "Traceback" not in text


def test_a_second_stop_before_the_start_up_exits_at_once() -> None:
    """Held signals wait for the start-up; a second one must not wait for a start-up that hangs.
    (The first was held, not acted on: the process lived to get the second.)"""
    script = (
        "import os, signal, time\n"
        "from arb.shutdown import hold_stop_signals\n"
        "hold_stop_signals()\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(30)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 1 and "received SIGINT again before starting: exiting" in result.stderr


def test_a_dry_run_attaches_only_to_simulated_venues_on_this_machine(tmp_path: Path) -> None:
    """The endpoints file's key signs every request of the run: a file naming another host (real
    venue URLs beside real keys, say) would trade for real without --live."""
    import json

    local = {"rest_url": "http://127.0.0.1:9", "ws_url": "ws://127.0.0.1:9/", "futures_rest_url": "http://[::1]:9",
             "futures_ws_url": "ws://localhost:9/"}
    remote = {**local, "rest_url": "https://192.0.2.1:8443"}  # TEST-NET: never routed
    urls = tmp_path / "urls.json"
    urls.write_text(json.dumps({"venues": {"gateio": local, "mexc": remote}, "api_key": "k", "api_secret": "s"}))
    result = arb("run", "--sim-urls", str(urls), "--duration", "1", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "mexc rest_url 'https://192.0.2.1:8443': not a loopback address" in result.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["sim", "--replay", "x.arb", "--seed", "7"], "--seed, --rate and --dislocations shape the synthetic market; a "
                                                  "--replay has none"),
    (["sim", "--replay", "x.arb", "--rate", "50"], "--seed, --rate and --dislocations shape the synthetic market"),
    (["sim", "--replay", "x.arb", "--dislocations", "0"], "--seed, --rate and --dislocations shape the synthetic market"),
    (["record", "--live", "--out", "x.arb", "--dislocations", "5"], "--dislocations: shapes the simulated market"),
    (["sim", "--speed", "2"], "--speed sets a --replay's pace; the synthetic market has none"),
    (["backtest", "x.arb", "--deposit", "BTC/X=5"], "'BTC/X' is not an asset name"),
    (["backtest", "x.arb", "--deposit", "U SDT=5"], "'U SDT' is not an asset name"),
    (["backtest", "x.arb", "--deposit", "USDT=0.5", "--deposit", "usdt=7"], "--deposit: USDT given twice"),
    (["sim", "--symbols", "BTC/USDT", "ETH/USDT", "BTC/USDT"], "--symbols: BTC/USDT given twice"),
    (["record", "--sim", "--out", "x.arb", "--symbols", "BTC/USDT", "BTC/USDT"], "--symbols: BTC/USDT given twice"),
    (["record", "--sim", "--out", "x.arb", "--venues", "mexc,mexc"], "mexc given twice in 'mexc,mexc'"),
])
def test_a_symbol_or_venue_given_twice_is_a_usage_error(tmp_path: Path, args: list[str], expected: str) -> None:
    result = arb(*args, cwd=tmp_path)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.arb").exists()  # refused before a recording was started


@pytest.mark.parametrize(("args", "expected"), [
    (["sim", "--matching-delay-ms", "1e308"], "--matching-delay-ms: must be from 0 to 60000 ms, got '1e308'"),
    (["backtest", "x.arb", "--latency-ms", "1e308"], "--latency-ms: must be from 0 to 60000 ms, got '1e308'"),
    (["record", "--out", "x.arb", "--rotate-mb", "1e308"], "--rotate-mb: must be from 1e-06 to 1000000 MB"),
    (["record", "--out", "x.arb", "--rotate-hours", "1e306"], "--rotate-hours: must be from 0.000277778 to 8784"),
    (["sim", "--replay", "x.arb", "--speed", "1e-400"], "--speed: must be at least 0.001 and finite, got '1e-400'"),
    (["sim", "--rate", "1000000000"], "--rate: must be from 1 to 10000, got '1000000000'"),
    (["sim", "--rate", "0"], "--rate: must be from 1 to 10000, got '0'"),
    (["sim", "--rate", "5.5"], "--rate: expected a whole number of updates a second, got '5.5'"),
    (["sim", "--dislocations", "-1"], "--dislocations: must be from 0 to 60000, got '-1'"),
    (["record", "--out", "x.arb", "--dislocations", "1e9"], "--dislocations: expected a whole number of dislocations"),
    (["backtest", "x.arb", "--deposit", "USDT=1e999999"], "--deposit: USDT: amount '1e999999': out of range"),
    (["backtest", "x.arb", "--deposit", "USDT=1e-37"], "--deposit: USDT: amount '1e-37': out of range"),
    (["backtest", "x.arb", "--deposit", "USDT=0.0000000000000000000000000000011"],
     "--deposit: USDT: amount '0.0000000000000000000000000000011': more than 30 decimals"),
])
def test_a_number_too_large_to_convert_is_a_usage_error(tmp_path: Path, args: list[str], expected: str) -> None:
    """Each is turned into nanoseconds, bytes or seconds later, which overflowed with a traceback (a
    synthetic rate past what the simulator can generate busy-looped instead)."""
    result = arb(*args, cwd=tmp_path)
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.arb").exists()


def test_a_report_that_could_not_be_written_fails_the_command(tmp_path: Path) -> None:
    """The directory passed the check before the run, then its summary.json could not be written:
    a run or backtest asked for a report it did not produce does not exit 0."""
    from simulated_recording import record_simulated

    recording = tmp_path / "rec.arb"
    record_simulated(recording, 200)
    for command in (("run", "--duration", "1"), ("backtest", str(recording))):
        report = tmp_path / f"report-{command[0]}"
        (report / "summary.json").mkdir(parents=True)  # where the file would go
        result = arb(*command, "--report", str(report), cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert f"report not written to {report}" in result.stderr and "Traceback" not in result.stderr


def test_a_backtest_of_a_directory_or_an_unreadable_recording_is_a_usage_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory was reported as "file not found", and a recording that could not be opened
    replayed as a damaged one ("RECORDING DAMAGED ... Permission denied", exit 1)."""
    from arb.cli import main
    from simulated_recording import record_simulated

    folder = tmp_path / "recordings"
    folder.mkdir()
    assert main(["backtest", str(folder)]) == 2
    assert f"{folder}: is a directory, expected a recording file" in capsys.readouterr().err
    recording = tmp_path / "rec.arb"
    record_simulated(recording, 200)
    opened = Path.open

    def refused(self: Path, *args: Any, **kwargs: Any) -> Any:  # chmod 000 does not stop root
        if self == recording:
            raise PermissionError(13, "Permission denied", str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    assert main(["backtest", str(recording)]) == 2
    err = capsys.readouterr().err
    assert f"{recording}: not readable: Permission denied" in err and "DAMAGED" not in err.upper()


def test_a_backtest_on_an_instrument_list_that_does_not_parse_fails(tmp_path: Path) -> None:
    """It exited 0 on the simulator's ticks, lots and fees: a result easily taken for one on the venue's."""
    from arb.replay.recorder import Recorder, RecordKind
    from arb.types import ExchangeName
    from simulated_recording import START_NS, WALL_OFFSET_NS, record_simulated

    recording, lists = tmp_path / "rec.arb", tmp_path / "lists.arb"
    record_simulated(recording, 200)
    recorder = Recorder(lists, wall_offset_ns=WALL_OFFSET_NS)
    recorder.record(ExchangeName.GATEIO, RecordKind.REST_RESPONSE, b'{"label":"SERVER_ERROR"}', recv_ns=START_NS)
    recorder.close()
    result = arb("backtest", str(recording), str(lists), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "RECORDED INSTRUMENT LIST UNREADABLE: gateio: " in result.stdout
    assert arb("backtest", str(recording), cwd=tmp_path).returncode == 0  # no list at all: said, not a failure


@pytest.mark.parametrize(("signum", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_command_stopped_before_it_began_says_it_did_not_do_its_work(signum: str, code: int) -> None:
    """``arb export ... && upload`` must not go on after an export that never ran."""
    script = (
        "import os, signal, sys\n"
        "from arb.shutdown import hold_stop_signals\n"
        "hold_stop_signals()\n"
        f"os.kill(os.getpid(), signal.{signum})\n"
        "from arb.cli import main\n"
        "sys.exit(main(['export', 'fills', '--journal', '/nonexistent/journal.sqlite3']))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == code and f"received {signum} before starting; stopped" in result.stderr
