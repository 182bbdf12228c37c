"""deploy/: the Dockerfile, compose, Prometheus, Grafana and Kubernetes files, checked without running them.

They are parsed and held against the code: every metric the dashboard and the alerting
rules query is one the exporter serves, the probes point at endpoints the server answers,
and the configuration they carry loads.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from loopback import run
from metrics_parts import engine_parts
from prometheus_client.parser import text_string_to_metric_families

from arb.cli import _build_parser
from arb.config import NON_CONFIG_ENV, ConfigurationManager
from arb.metrics import EngineParts, MetricsExporter, MetricsServer
from arb.monitor import PerformanceMonitor
from arb.secrets import VENUE_ENV_PREFIX
from arb.types import ArbitrageConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "arb.json"
PROMQL_WORDS = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


# --- helpers ------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return out


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Instructions per build stage (each starting with its FROM)."""
    result: list[list[tuple[str, str]]] = []
    for item in instructions:
        if item[0] == "FROM":
            result.append([])
        elif not result:
            assert item[0] == "ARG", f"{item[0]} before the first FROM"
            continue
        result[-1].append(item)
    return result


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in stage:
        if instruction == "ENV":
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def exec_form(args: str) -> list[str]:
    form = json.loads(args)
    assert isinstance(form, list) and all(isinstance(a, str) for a in form), args
    return form


def load_yaml(path: Path) -> Any:
    with path.open() as fh:
        return yaml.safe_load(fh)


def k8s_docs() -> dict[str, dict[str, Any]]:
    with (DEPLOY / "k8s" / "arb.yaml").open() as fh:
        return {doc["kind"]: doc for doc in yaml.safe_load_all(fh) if doc}


def load_config(tmp_path: Path, text: str | None, environ: dict[str, str]) -> ConfigurationManager:
    path = None
    if text is not None:
        path = tmp_path / "arb.toml"
        path.write_text(text)
    manager = ConfigurationManager(path, environ=environ)
    manager.load_configuration()
    return manager


def assert_run_arguments(argv: list[str]) -> None:
    """``argv`` is a valid ``python -m arb`` run command line."""
    args = _build_parser().parse_args(argv)
    assert args.command == "run" and not args.live, argv  # the shipped files never trade real money


def served_paths() -> set[str]:
    server = MetricsServer(MetricsExporter(EngineParts(monitor=PerformanceMonitor(50))))
    return {route.resource.canonical for route in server.app.router.routes() if route.resource is not None}


def image_env() -> dict[str, str]:
    return env_of(stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1])


def image_files() -> dict[str, Path]:
    """Where the runtime image holds each file it copies from the repository -> that file."""
    runtime = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1]
    files = {}
    for instruction, args in runtime:
        words = shlex.split(args)
        if instruction == "COPY" and not words[0].startswith("--"):
            (source, target) = words
            files[target] = ROOT / source
    return files


def image_config(argv: list[str]) -> Path:
    """The repository file the image holds where the run command ``argv`` names its ``--config``."""
    return image_files()[argv[argv.index("--config") + 1]]


def assert_image_metrics(config: ArbitrageConfig) -> None:
    """``config`` serves the metrics where the image's health check and exposed port expect them."""
    runtime = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1]
    (healthcheck,) = [args for instruction, args in runtime if instruction == "HEALTHCHECK"]
    exposed = [args for instruction, args in runtime if instruction == "EXPOSE"]
    assert config.metrics.enabled and config.metrics.host == "0.0.0.0"
    assert exposed == [str(config.metrics.port)]
    assert f"http://127.0.0.1:{config.metrics.port}/healthz" in healthcheck


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Sample name -> label names, from scraping a served exporter over parts with every family populated."""

    async def main() -> str:
        exporter = MetricsExporter(await engine_parts())
        async with MetricsServer(exporter, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/metrics") as response:
                assert response.status == 200
                return await response.text()

    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(run(main())):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_builds_the_wheel() -> None:
    builder, runtime = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))
    (from_builder,) = [args for instruction, args in dockerfile_instructions(DEPLOY / "Dockerfile")
                       if instruction == "FROM" and args.endswith(" AS builder")]
    assert from_builder
    runs = " ".join(args for instruction, args in builder if instruction == "RUN")
    assert "gcc" in runs and "pip wheel" in runs
    copied = [shlex.split(args)[:-1] for instruction, args in builder if instruction == "COPY"]
    for sources in copied:
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    assert {"pyproject.toml", "setup.py", "arb", "arb_core"} <= {s for sources in copied for s in sources}
    runtime_runs = " ".join(args for instruction, args in runtime if instruction == "RUN")
    assert "gcc" not in runtime_runs and "--no-index" in runtime_runs
    assert any(i == "COPY" and args.startswith("--from=builder ") for i, args in runtime)


def test_dockerignore_keeps_every_source_the_build_copies() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not ignored & {"arb", "arb_core", "pyproject.toml", "setup.py", "README.md", "LICENSE"}
    assert "**/*.so" in ignored  # in-place builds never reach the image


def test_runtime_runs_as_non_root_with_a_healthcheck_on_healthz() -> None:
    runtime = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1]
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert [args for instruction, args in runtime if instruction == "HEALTHCHECK"]
    entrypoint = [exec_form(args) for instruction, args in runtime if instruction == "ENTRYPOINT"][-1]
    command = [exec_form(args) for instruction, args in runtime if instruction == "CMD"][-1]
    assert entrypoint[:3] == ["python", "-m", "arb"] and command[0] == "run"
    assert_run_arguments(command)


def test_the_image_configures_the_engine_by_a_file_its_command_names(tmp_path: Path) -> None:
    """The image's ARB_JOURNAL_PATH and ARB_METRICS_* beat a mounted --config file's values: a live
    journal the operator put on a mount of theirs went to the image's volume instead."""
    assert not {name for name in image_env() if name.startswith("ARB_")} - NON_CONFIG_ENV
    runtime = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1]
    command = [exec_form(args) for instruction, args in runtime if instruction == "CMD"][-1]
    config = load_config(tmp_path, image_config(command).read_text(), image_env()).config
    assert_image_metrics(config)
    (volume,) = [exec_form(args) for instruction, args in runtime if instruction == "VOLUME"]
    assert Path(config.journal_path).parent.as_posix() in volume


def test_every_file_the_image_copies_is_in_the_build_context() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for source in image_files().values():
        relative = source.relative_to(ROOT).as_posix()
        assert source.is_file(), f"Dockerfile copies {relative}, which is not in the repository"
        # The last pattern that matches the file or a folder above it decides (a "!" one keeps it).
        parts = relative.split("/")
        prefixes = {"/".join(parts[:n]) for n in range(1, len(parts) + 1)}
        decisive = [p for p in patterns if any(fnmatch.fnmatch(prefix, p.lstrip("!")) for prefix in prefixes)]
        assert not decisive or decisive[-1].startswith("!"), f".dockerignore leaves {relative} out of the build"


# --- compose, Prometheus, Grafana --------------------------------------------------------------


def test_compose_runs_engine_prometheus_and_grafana_from_files_that_exist(tmp_path: Path) -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    services = compose["services"]
    assert set(services) == {"engine", "prometheus", "grafana"}
    build = services["engine"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (DEPLOY / "Dockerfile").resolve()
    mounts: dict[str, dict[str, Path]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"
                mounts.setdefault(name, {})[target] = (DEPLOY / source).resolve()
    assert mounts["prometheus"]["/etc/prometheus/prometheus.yml"] == (DEPLOY / "prometheus.yml").resolve()
    grafana = mounts["grafana"]
    assert grafana["/etc/grafana/provisioning"] == (DEPLOY / "grafana" / "provisioning").resolve()
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "arb.yml")["providers"][0]
    dashboards_dir = grafana[provider["options"]["path"]]
    assert (dashboards_dir / DASHBOARD.name).resolve() == DASHBOARD.resolve()
    command = services["engine"]["command"]
    assert_run_arguments(command)
    env = {k: str(v) for k, v in services["engine"].get("environment", {}).items()}
    assert not {name for name in env if name.startswith("ARB_")}  # they would beat a mounted file's values
    assert_image_metrics(load_config(tmp_path, image_config(command).read_text(), env).config)


def test_prometheus_loads_the_alerting_rules_compose_mounts() -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    (rules,) = load_yaml(DEPLOY / "prometheus.yml")["rule_files"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert f"./alerts.yml:{rules}:ro" in mounts and (DEPLOY / "alerts.yml").is_file()


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(DEPLOY / "alerts.yml")["groups"] for rule in group["rules"]]


def test_every_alert_queries_exported_metrics_and_labels(exported: dict[str, set[str]]) -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "ArbEngineDown", "ArbCircuitBreakerTripped", "ArbMarketHalted", "ArbRecoveryAwaitingApproval",
        "ArbDailyLossNearLimit", "ArbConnectionDown", "ArbBooksStale", "ArbNearLiquidation", "ArbTakerFeeChanged",
        "ArbPrivateStreamDown",
    }
    for rule in rules:
        expr = rule["expr"]
        metrics = {w for w in PROMQL_WORDS.findall(expr) if w.startswith("arb_")}
        assert metrics <= set(exported), f"{rule['alert']}: not exported: {sorted(metrics - set(exported))}"
        labels = set().union(*(exported[m] for m in metrics)) if metrics else {"job"}
        matched = set(re.findall(r"[{,]\s*([A-Za-z_]+)\s*=~?", expr))
        templated = set(re.findall(r"\$labels\.([A-Za-z_]+)", rule["annotations"]["summary"]))
        assert matched | templated <= labels, f"{rule['alert']}: labels {sorted((matched | templated) - labels)}"
        assert rule["labels"]["severity"] in ("warning", "critical")
    awaiting = next(r for r in rules if r["alert"] == "ArbRecoveryAwaitingApproval")["expr"]
    assert 'status="awaiting_approval"' in awaiting  # a value the exporter sets, not only a label name
    assert ("arb_recoveries_active", frozenset({("status", "awaiting_approval")})) in exported_samples()


def exported_samples() -> set[tuple[str, frozenset[tuple[str, str]]]]:
    async def main() -> str:
        return MetricsExporter(await engine_parts()).render().decode()

    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(run(main()))
        for sample in family.samples
    }


def test_prometheus_scrapes_the_engine_metrics_endpoint() -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    port = tomllib.loads(image_config(compose["services"]["engine"]["command"]).read_text())["metrics"]["port"]
    (job,) = load_yaml(DEPLOY / "prometheus.yml")["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"engine:{port}"]
    assert "/metrics" in served_paths()
    # The "engine down" rule selects this job, and also fires when its target is gone altogether.
    down = next(r for r in alert_rules() if r["alert"] == "ArbEngineDown")["expr"]
    assert job["job_name"] == "arb" and f'absent(up{{job="{job["job_name"]}"}})' in down


def test_dashboard_uses_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    (source,) = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert panel["targets"], panel["title"]


def test_dashboard_has_the_documented_panels() -> None:
    titles = {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert {
        "Book update rate", "Stale books", "Book resyncs", "Opportunities", "Executions by outcome",
        "Realized PnL (USD)", "Exposure (USD)", "Free balances", "Circuit breakers", "Connections",
        "Latency p50 per stage", "Latency p99 per stage", "Halted markets", "Distance from liquidation (bps)",
    } <= titles


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


def test_every_metric_the_dashboard_queries_is_exported(exported: dict[str, set[str]]) -> None:
    used = {word for expr in dashboard_queries() for word in PROMQL_WORDS.findall(expr) if word.startswith("arb_")}
    assert used, "no arb_ metric found in the dashboard"
    assert used <= set(exported), f"queried but not exported: {sorted(used - set(exported))}"
    assert all(any(w.startswith("arb_") for w in PROMQL_WORDS.findall(e)) for e in dashboard_queries())


def test_every_label_the_dashboard_groups_or_filters_by_exists(exported: dict[str, set[str]]) -> None:
    for expr in dashboard_queries():
        metrics = {w for w in PROMQL_WORDS.findall(expr) if w.startswith("arb_")}
        labels = set().union(*(exported[m] for m in metrics))
        grouped = {label.strip() for group in re.findall(r"\bby \(([^)]*)\)", expr) for label in group.split(",")}
        matched = set(re.findall(r"[{,]\s*([A-Za-z_]+)\s*=~?", expr))
        assert grouped | matched <= labels, f"{expr}: labels {sorted((grouped | matched) - labels)} not exported"


def test_latency_panels_take_quantiles_of_the_stage_histogram() -> None:
    quantiles = [e for e in dashboard_queries() if e.startswith("histogram_quantile(")]
    assert {e.split(",")[0] for e in quantiles} == {"histogram_quantile(0.5", "histogram_quantile(0.99"}
    assert all("arb_stage_latency_seconds_bucket" in e and "le" in e and "stage" in e for e in quantiles)


# --- Kubernetes ---------------------------------------------------------------------------


def container() -> dict[str, Any]:
    (engine,) = k8s_docs()["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    return engine


def test_deployment_runs_one_non_root_replica_with_resources() -> None:
    """One replica, of a StatefulSet: a Deployment starts a replacement while the old pod may still
    run (a node that stopped answering), two engines on the same accounts."""
    statefulset = k8s_docs()["StatefulSet"]
    spec = statefulset["spec"]
    assert spec["replicas"] == 1 and spec["podManagementPolicy"] == "OrderedReady"
    assert spec["serviceName"] == k8s_docs()["Service"]["metadata"]["name"]
    assert "Deployment" not in k8s_docs()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    engine = container()
    assert engine["securityContext"]["allowPrivilegeEscalation"] is False
    assert engine["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"cpu", "memory"} <= set(engine["resources"]["requests"]) <= set(engine["resources"]["limits"])
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert k8s_docs()["Service"]["spec"]["selector"].items() <= labels.items()


def test_keys_come_from_the_secret_and_config_from_the_configmap(tmp_path: Path) -> None:
    docs = k8s_docs()
    engine = container()
    secret_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in engine["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    expected = {f"{prefix}_{kind}" for prefix in VENUE_ENV_PREFIX.values() for kind in ("API_KEY", "SECRET_KEY")}
    assert set(secret_env) == expected
    assert all(ref["key"] == name and ref["name"] == "arb-api-keys" for name, ref in secret_env.items())
    plain_env = {e["name"]: e["value"] for e in engine["env"] if "value" in e}
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    (config_volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert config_volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    (mount,) = [m for m in engine["volumeMounts"] if m["name"] == config_volume["name"]]
    args = engine["args"]
    assert_run_arguments(args)
    config_path = args[args.index("--config") + 1]
    assert Path(config_path).parent == Path(mount["mountPath"])
    text = docs["ConfigMap"]["data"][Path(config_path).name]
    assert not {name for name in plain_env if name.startswith("ARB_")}  # they would beat the ConfigMap's values
    config = load_config(tmp_path, text, {**image_env(), **plain_env}).config
    assert_image_metrics(config)
    assert Path(config.journal_path).parent.as_posix() in {m["mountPath"] for m in engine["volumeMounts"]}


def test_probes_point_at_endpoints_the_server_answers(tmp_path: Path) -> None:
    docs = k8s_docs()
    engine = container()
    ports = {p["name"]: p["containerPort"] for p in engine["ports"]}
    config = tomllib.loads(docs["ConfigMap"]["data"]["arb.toml"])["metrics"]
    probes = {kind: engine[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz" and probes["readinessProbe"]["path"] == "/readyz"
    # The start-up's journal replay blocks the loop: liveness starts only once it is done.
    assert probes["startupProbe"]["path"] == "/startedz"
    assert {probe["path"] for probe in probes.values()} <= served_paths()
    for probe in probes.values():
        assert ports[probe["port"]] == config["port"]
    service_port = docs["Service"]["spec"]["ports"][0]
    assert service_port["targetPort"] in ports

    async def main() -> dict[str, tuple[int, dict[str, Any]]]:
        exporter = MetricsExporter(await engine_parts())
        answers = {}
        async with MetricsServer(exporter, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
            for kind, probe in probes.items():
                async with session.get(f"{server.url}{probe['path']}") as response:
                    answers[kind] = (response.status, await response.json())
        return answers

    answers = run(main())
    for kind in ("startupProbe", "livenessProbe"):
        assert answers[kind][0] == 200 and answers[kind][1]["status"] == "ok"
    status, body = answers["readinessProbe"]
    assert status == 503 and body["ready"] is False and body["reasons"]  # the parts have a book out of sync


def service_links(service: dict[str, Any]) -> dict[str, str]:
    """The variables Kubernetes gives every pod of the namespace for ``service`` unless its pod
    spec sets ``enableServiceLinks: false`` (named as the kubelet names them)."""
    name = service["metadata"]["name"].upper().replace("-", "_")
    links = {f"{name}_SERVICE_HOST": "10.0.0.7", f"{name}_PORT": ""}
    for port in service["spec"]["ports"]:
        number, protocol = port["port"], port.get("protocol", "TCP")
        links[f"{name}_SERVICE_PORT"] = str(number)
        links[f"{name}_PORT"] = f"{protocol.lower()}://10.0.0.7:{number}"
        if "name" in port:
            links[f"{name}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(number)
        prefix = f"{name}_PORT_{number}_{protocol}"
        links.update({prefix: f"{protocol.lower()}://10.0.0.7:{number}", f"{prefix}_PROTO": protocol.lower(),
                      f"{prefix}_PORT": str(number), f"{prefix}_ADDR": "10.0.0.7"})
    return links


def test_the_engine_starts_beside_the_services_of_its_namespace(tmp_path: Path) -> None:
    """The Service arb-metrics would give the engine ARB_METRICS_SERVICE_HOST and the like, which
    its configuration refuses as unknown settings: a pod restarted after the Service exists
    would never start again."""
    docs = k8s_docs()
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    engine = container()
    environ = {**image_env(), **{e["name"]: e["value"] for e in engine["env"] if "value" in e}}
    if pod.get("enableServiceLinks", True):
        environ = {**service_links(docs["Service"]), **environ}  # the container's own env wins
    args = engine["args"]
    config_path = args[args.index("--config") + 1]
    load_config(tmp_path, docs["ConfigMap"]["data"][Path(config_path).name], environ)


def test_the_orchestrators_wait_for_the_whole_shutdown_before_killing_the_engine() -> None:
    """Docker and Kubernetes kill the process when their grace period ends, whatever it is doing."""
    from arb.controller import SHUTDOWN_TIMEOUT_S

    with (DEPLOY / "docker-compose.yml").open() as fh:
        compose = yaml.safe_load(fh)
    grace = compose["services"]["engine"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= SHUTDOWN_TIMEOUT_S + 10
    pod = k8s_docs()["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= SHUTDOWN_TIMEOUT_S + 10
