"""Check the container packaging: docker-compose.yml, Dockerfile and the config they mount.

No Docker engine is needed: the files are parsed and cross-checked against each other.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from streams.settings import Settings

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
DASHBOARD = REPO / "config" / "grafana" / "dashboards" / "kmg-sentinel.json"
GRAFANA_PROVISIONING = REPO / "config" / "grafana" / "provisioning"
KAFKA_POM = REPO / "config" / "kafka" / "pom.xml"

# The worker's metrics contract: series name -> labels it carries.
METRIC_LABELS: dict[str, frozenset[str]] = {
    "kmg_events_total": frozenset({"kind", "outcome"}),
    "kmg_dead_letters_total": frozenset({"reason_class"}),
    "kmg_alerts_total": frozenset({"rule", "status", "severity"}),
    "kmg_late_events_total": frozenset(),
    "kmg_duplicates_total": frozenset(),
    "kmg_event_processing_seconds_bucket": frozenset({"le"}),
    "kmg_event_processing_seconds_sum": frozenset(),
    "kmg_event_processing_seconds_count": frozenset(),
    "kmg_watermark_lag_seconds": frozenset({"partition"}),
}
HISTOGRAM = "kmg_event_processing_seconds"

# Settings that must be 1 on a single broker, or groups and transactions cannot start.
SINGLE_BROKER_ENV = [
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
    "KAFKA_DEFAULT_REPLICATION_FACTOR",
    "KAFKA_MIN_INSYNC_REPLICAS",
]

# Files the image needs at run time, and files that must stay out of the build context.
IMAGE_SOURCES = ["pyproject.toml", "alerts/engine.py", "streams/cli.py"] + [
    p.relative_to(REPO).as_posix() for p in sorted((REPO / "config").glob("*.toml"))
]
CONTEXT_EXCLUDED = [".git/HEAD", ".venv/bin/python", ".cache/kafka/libs/x.jar"]


def _load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read YAML files")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compose_cli() -> list[str] | None:
    """Return the Compose command on this machine: the docker plugin, else docker-compose."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return command
    return None


def _load_compose() -> tuple[dict[str, Any], str | None]:
    """Return the compose file's content, or {} and why it could not be read."""
    try:
        import yaml
    except ImportError:
        # `config --format json` is the plugin's; it needs no Docker engine.
        if _compose_cli() != ["docker", "compose"]:
            return {}, "neither PyYAML nor docker compose can read docker-compose.yml"
        done = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--format", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return {}, f"docker compose config failed: {done.stderr.strip()[:200]}"
        return dict(json.loads(done.stdout)), None
    return dict(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))), None


COMPOSE, COMPOSE_UNREADABLE = _load_compose()


def _services() -> dict[str, dict[str, Any]]:
    if COMPOSE_UNREADABLE:
        pytest.skip(COMPOSE_UNREADABLE)
    return dict(COMPOSE["services"])


def _service(name: str) -> dict[str, Any]:
    return _services()[name]


def _env(service: str) -> dict[str, str]:
    raw = _service(service).get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(value) for key, value in raw.items()}


def _ports(service: str) -> list[tuple[str, str]]:
    """Return (published, target) pairs from short or long port syntax."""
    pairs = []
    for port in _service(service).get("ports", []):
        if isinstance(port, dict):
            pairs.append((str(port.get("published", "")), str(port["target"])))
        else:
            parts = str(port).split("/")[0].rsplit(":", 2)
            pairs.append((parts[-2] if len(parts) > 1 else "", parts[-1]))
    return pairs


def _volumes(service: str) -> list[tuple[str, str, str]]:
    """Return (type, source, target) from short or long volume syntax."""
    mounts = []
    for vol in _service(service).get("volumes", []):
        if isinstance(vol, dict):
            mounts.append((vol["type"], str(vol.get("source", "")), vol["target"]))
            continue
        source, target = vol.split(":")[:2]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        mounts.append((kind, source, target))
    return mounts


def _depends_on(service: str) -> dict[str, str]:
    raw = _service(service).get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def _bind_mounts() -> list[tuple[str, str, str]]:
    return [
        (name, source, target)
        for name in COMPOSE.get("services", {})
        for kind, source, target in _volumes(name)
        if kind == "bind"
    ]


def _mount_source(service: str, target: str) -> Path:
    for kind, source, mounted_at in _volumes(service):
        if kind == "bind" and mounted_at == target:
            return (REPO / source).resolve()
    raise AssertionError(f"{service} mounts nothing from the repo at {target}")


def test_compose_file_defines_the_stack() -> None:
    assert {"kafka", "worker", "simulator", "prometheus", "grafana"} <= set(_services())
    assert _service("simulator").get("profiles"), "the simulator must be opt-in"


@pytest.mark.parametrize("service", ["kafka", "prometheus", "grafana"])
def test_third_party_images_are_pinned(service: str) -> None:
    image = _service(service)["image"]
    name, _, tag = image.rpartition(":")
    assert name and re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{image} is not pinned to a release"


def test_kafka_runs_the_same_release_as_the_dev_broker() -> None:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", KAFKA_POM.read_text())
    assert match, "config/kafka/pom.xml names no kafka.version"
    assert _service("kafka")["image"] == f"apache/kafka:{match.group(1)}"


def test_kafka_is_a_single_combined_kraft_node() -> None:
    env = _env("kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = dict(re.findall(r"(\w+)://[^:,]*:(\d+)", env["KAFKA_LISTENERS"]))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        f"{env['KAFKA_NODE_ID']}@kafka:{listeners[controller]}"
    )
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    # The storage format rejects a cluster id that is not a base64url-encoded 16-byte UUID.
    cluster_id = env["CLUSTER_ID"]
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


@pytest.mark.parametrize("key", SINGLE_BROKER_ENV)
def test_kafka_internal_topics_fit_one_broker(key: str) -> None:
    assert _env("kafka").get(key) == "1"


def test_kafka_has_a_healthcheck_the_worker_waits_for() -> None:
    probe = " ".join(_service("kafka")["healthcheck"]["test"])
    assert "kafka-broker-api-versions.sh" in probe
    assert _depends_on("worker") == {"kafka": "service_healthy"}


def test_the_workers_healthcheck_asks_whether_the_broker_answers_it() -> None:
    probe = " ".join(_service("worker")["healthcheck"]["test"])
    assert f"127.0.0.1:{_env('worker')['KMG_WEB_PORT']}/ready" in probe
    # The worker's own deadline for a stop falls inside the grace compose gives it.
    grace = _service("worker")["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > Settings().shutdown_grace_seconds


def test_worker_builds_from_the_dockerfile() -> None:
    build = _service("worker")["build"]
    if isinstance(build, str):
        build = {"context": build}
    context = (REPO / build["context"]).resolve()
    assert context == REPO
    assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_worker_reaches_kafka_on_its_advertised_internal_listener() -> None:
    bootstrap = _env("worker")["KMG_KAFKA_BOOTSTRAP"]
    advertised = _env("kafka")["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert bootstrap.startswith("kafka:")
    assert any(item.endswith(f"://{bootstrap}") for item in advertised)


def test_worker_publishes_its_web_port_and_keeps_state_on_a_named_volume() -> None:
    env = _env("worker")
    # A loopback bind inside the container is unreachable from Prometheus and the host.
    assert env["KMG_WEB_HOST"] == "0.0.0.0"
    assert env["KMG_WEB_PORT"] == "6066"
    assert ("6066", "6066") in _ports("worker")
    assert env["KMG_DATA_DIR"] == "/data"
    data = [(kind, src) for kind, src, target in _volumes("worker") if target == "/data"]
    assert len(data) == 1 and data[0][0] == "volume"
    assert data[0][1] in COMPOSE.get("volumes", {})


def test_the_simulator_profile_can_lift_the_workers_limit_on_event_time_ahead() -> None:
    # The simulator runs event time ahead of the wall clock; the worker keeps its default
    # limit unless the caller sets KMG_MAX_EVENT_LEAD_HOURS (0 for the simulator profile).
    assert _env("worker")["KMG_MAX_EVENT_LEAD_HOURS"] == "${KMG_MAX_EVENT_LEAD_HOURS:-24}"
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert "KMG_MAX_EVENT_LEAD_HOURS=0 docker compose --profile simulator up" in readme


def test_simulator_shares_the_worker_image_and_broker() -> None:
    worker, simulator = _service("worker"), _service("simulator")
    assert simulator["image"] == worker["image"]
    assert simulator["command"][0] == "simulate"
    assert _env("simulator")["KMG_KAFKA_BOOTSTRAP"] == _env("worker")["KMG_KAFKA_BOOTSTRAP"]


@pytest.mark.parametrize(
    ("service", "source", "target"), _bind_mounts(), ids=[f"{s}:{t}" for s, _, t in _bind_mounts()]
)
def test_files_mounted_from_the_repo_exist(service: str, source: str, target: str) -> None:
    path = (REPO / source).resolve()
    assert path.is_relative_to(REPO), f"{service} mounts {source} from outside the repo"
    assert path.exists(), f"{service} mounts missing {source} at {target}"


def test_prometheus_scrapes_the_worker_metrics() -> None:
    config = _load_yaml(_mount_source("prometheus", "/etc/prometheus/prometheus.yml"))
    web_port = _env("worker")["KMG_WEB_PORT"]
    scraped = {
        (target, job.get("metrics_path", "/metrics"))
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert (f"worker:{web_port}", "/metrics") in scraped


def test_grafana_allows_anonymous_viewers() -> None:
    env = _env("grafana")
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert _mount_source("grafana", "/etc/grafana/provisioning") == GRAFANA_PROVISIONING


def test_grafana_datasource_is_the_compose_prometheus() -> None:
    sources = _load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert [(s["type"], s["url"]) for s in sources] == [("prometheus", "http://prometheus:9090")]
    assert ("9090", "9090") in _ports("prometheus")


def test_grafana_loads_the_dashboards_folder_that_is_mounted() -> None:
    providers = _load_yaml(GRAFANA_PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    paths = {p["options"]["path"] for p in providers if p["type"] == "file"}
    assert len(paths) == 1
    assert _mount_source("grafana", paths.pop()) == DASHBOARD.parent


def _dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel["targets"]]


@pytest.mark.parametrize(("title", "expr"), _dashboard_queries(), ids=lambda v: str(v)[:40])
def test_dashboard_queries_only_contract_metrics_and_labels(title: str, expr: str) -> None:
    series = set(re.findall(r"\bkmg_\w+", expr))
    assert series and series <= set(METRIC_LABELS), f"{title}: unknown series"
    labels = frozenset().union(*(METRIC_LABELS[name] for name in series))
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        used = {label.strip() for label in group.split(",")}
        assert used <= labels, f"{title}: grouped by labels {used - labels} the series lack"


def test_dashboard_covers_every_metric_on_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queried = {name for _, expr in _dashboard_queries() for name in re.findall(r"kmg_\w+", expr)}
    plain = {name for name in METRIC_LABELS if not name.startswith(HISTOGRAM)}
    assert plain | {f"{HISTOGRAM}_bucket"} <= queried
    exprs = " ".join(expr for _, expr in _dashboard_queries())
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    sources = _load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {sources[0]["uid"]}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def _dockerfile() -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = (line.strip() for line in text.splitlines())
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def _instruction(name: str) -> list[str]:
    return [args for word, args in _dockerfile() if word == name]


def test_dockerfile_runs_kmg_worker_on_python_311_slim() -> None:
    assert _instruction("FROM")[-1].split()[0] == "python:3.11-slim"
    assert json.loads(_instruction("ENTRYPOINT")[-1]) == ["kmg"]
    assert json.loads(_instruction("CMD")[-1]) == ["worker"]
    assert "6066" in _instruction("EXPOSE")[-1].split()
    env = " ".join(_instruction("ENV")).split()
    assert {"KMG_DATA_DIR=/data", "KMG_WEB_HOST=0.0.0.0", "KMG_WEB_PORT=6066"} <= set(env)
    assert json.loads(_instruction("VOLUME")[-1]) == ["/data"]


def test_dockerfile_drops_root_after_installing() -> None:
    words = [word for word, _ in _dockerfile()]
    last_user = len(words) - 1 - words[::-1].index("USER")
    assert _dockerfile()[last_user][1].split(":")[0] not in {"root", "0"}
    assert "RUN" not in words[last_user:]


def test_dockerfile_copies_the_packages_beside_config() -> None:
    workdir = PurePosixPath(_instruction("WORKDIR")[-1])
    copied = {}
    for args in _instruction("COPY"):
        *sources, dest = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"COPY of missing {source}"
            copied[source.rstrip("/")] = workdir / dest
    assert {"pyproject.toml", "alerts", "streams", "config"} <= set(copied)
    # streams/rule_files.py finds config/ as a sibling of the streams package.
    assert copied["config"].parent == copied["streams"].parent == workdir


def _ignored(path: str) -> bool:
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()[:1] != "#"
    ]
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatch(prefix, body) for prefix in prefixes) or (
            body.startswith("**/") and any(fnmatch.fnmatch(p, body[3:]) for p in parts)
        ):
            ignored = not negate
    return ignored


@pytest.mark.parametrize(
    ("path", "expected"),
    [(p, False) for p in IMAGE_SOURCES] + [(p, True) for p in CONTEXT_EXCLUDED],
)
def test_dockerignore_keeps_sources_and_drops_local_state(path: str, expected: bool) -> None:
    assert _ignored(path) is expected


def test_compose_cli_accepts_the_file() -> None:
    command = _compose_cli()
    if command is None:
        pytest.skip("no docker compose CLI to validate the file with")
    done = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
