"""The shipped Prometheus alerting rules query only what a worker exports, and parse as PromQL."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import StreamMetrics

promql = pytest.importorskip("promql_parser", reason="promql-parser checks the rules' PromQL")
yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read YAML files")

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = REPO / "config" / "prometheus"
PROMTOOL_VERSION = os.environ.get("KMG_PROMTOOL_VERSION", "v0.305.0")
PROMTOOL = REPO / ".cache" / "promtool" / PROMTOOL_VERSION / "promtool"  # scripts/promtool
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})
SEVERITIES = {"critical", "warning"}
TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


def _load(name: str) -> Any:
    return yaml.safe_load((PROMETHEUS / name).read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load("alerts.yml")["groups"] for rule in group["rules"]]


def _exported() -> dict[str, dict[str, set[str]]]:
    """Return each series a worker exports (and `up`) with the values each label takes."""
    registry = CollectorRegistry()
    StreamMetrics(registry).partition(0, 1.0, 0, 0)
    series: dict[str, dict[str, set[str]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = series.setdefault(sample.name, {})
            for key, value in sample.labels.items():
                labels.setdefault(key, set()).add(value)
    jobs = {job["job_name"] for job in _load("prometheus.yml")["scrape_configs"]}
    series["up"] = {"job": jobs}
    return series


EXPORTED = _exported()
RULES = _rules()
IDS = [rule.get("alert", "?") for rule in RULES]


def _selectors(node: Any) -> list[Any]:
    """Return every vector selector under a parsed expression."""
    if isinstance(node, promql.VectorSelector):
        return [node]
    if isinstance(node, promql.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, promql.BinaryExpr):
        return _selectors(node.lhs) + _selectors(node.rhs)
    if isinstance(node, promql.Call):
        return [s for arg in node.args for s in _selectors(arg)]
    if isinstance(node, (promql.AggregateExpr, promql.ParenExpr, promql.UnaryExpr)):
        return _selectors(node.expr)
    if isinstance(node, promql.SubqueryExpr):
        return _selectors(node.expr)
    return []


def _labels_of(node: Any) -> frozenset[str]:
    """Return the labels an expression's result series carry."""
    if isinstance(node, promql.MatrixSelector):
        node = node.vector_selector
    if isinstance(node, promql.VectorSelector):
        return frozenset(EXPORTED.get(node.name, {})) | TARGET_LABELS - {"__name__"}
    if isinstance(node, promql.AggregateExpr):
        inner = _labels_of(node.expr)
        if node.modifier is None:
            return frozenset()
        chosen = frozenset(node.modifier.labels)
        if node.modifier.type == promql.AggModifierType.By:
            assert chosen <= inner, f"grouped by {sorted(chosen - inner)}, which the series lack"
            return chosen
        return inner - chosen
    if isinstance(node, promql.Call):
        vectors = [a for a in node.args if not isinstance(a, promql.NumberLiteral)]
        labels = _labels_of(vectors[0]) if vectors else frozenset()
        return labels - {"le"} if node.func.name == "histogram_quantile" else labels
    if isinstance(node, promql.BinaryExpr):
        if isinstance(node.lhs, promql.NumberLiteral):
            return _labels_of(node.rhs)
        return _labels_of(node.lhs)
    if isinstance(node, (promql.ParenExpr, promql.UnaryExpr, promql.SubqueryExpr)):
        return _labels_of(node.expr)
    return frozenset()


def _alternatives(pattern: str) -> list[str]:
    """Return the top-level alternatives of a label regex (the whole one if it nests groups)."""
    return pattern.split("|") if "(" not in pattern else [pattern]


def _matches(op: Any, wanted: str, value: str) -> bool:
    if op in (promql.MatchOp.Equal, promql.MatchOp.NotEqual):
        return value == wanted
    return re.fullmatch(wanted, value) is not None


def test_the_rules_file_is_loaded_by_the_compose_prometheus() -> None:
    assert "/etc/prometheus/alerts.yml" in _load("prometheus.yml")["rule_files"]
    compose = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    assert "./config/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in compose


def test_alert_names_are_unique_and_every_rule_says_what_it_means() -> None:
    assert len(IDS) == len(set(IDS)) and len(IDS) >= 5
    for rule in RULES:
        assert re.fullmatch(r"Kmg[A-Z]\w+", rule["alert"]), rule
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if "for" in rule:
            promql.parse_duration(rule["for"])


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_a_rule_queries_only_exported_series_and_label_values(rule: dict[str, Any]) -> None:
    expr = promql.parse(rule["expr"])
    selectors = _selectors(expr)
    assert selectors, "a rule must read a series"
    for selector in selectors:
        assert selector.name in EXPORTED, f"{selector.name} is not exported by a worker"
        labels = EXPORTED[selector.name]
        for matcher in selector.matchers.matchers:
            if matcher.name in TARGET_LABELS - labels.keys():
                continue
            assert matcher.name in labels, f"{selector.name} has no label {matcher.name}"
            # Each matcher (exclusions too), and each alternative of a regex, names a value the
            # worker exports: a misspelt reason class would make the rule silently never fire.
            for wanted in _alternatives(matcher.value):
                hits = [v for v in labels[matcher.name] if _matches(matcher.op, wanted, v)]
                assert hits, f"{selector.name}{{{matcher.name} {wanted!r}}} matches nothing"


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_a_rules_annotations_name_only_labels_its_result_carries(rule: dict[str, Any]) -> None:
    carried = _labels_of(promql.parse(rule["expr"]))
    named = {m for text in rule["annotations"].values() for m in TEMPLATE_LABEL.findall(text)}
    assert named <= carried, f"annotations name {sorted(named - carried)}, the result lacks"


def test_the_rules_catch_a_misspelt_label_value() -> None:
    # The check above can fail: a reason class the worker never exports is found.
    selector = promql.parse('kmg_dead_letters_total{reason_class="ahead_of_clok"}')
    [matcher] = selector.matchers.matchers
    exported = EXPORTED["kmg_dead_letters_total"]["reason_class"]
    assert not [v for v in exported if _matches(matcher.op, matcher.value, v)]
    assert _alternatives("ahead_of_clok|key_mismatch") == ["ahead_of_clok", "key_mismatch"]
    assert "ahead_of_clock" in exported and "patient_overloaded" in exported


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not PROMTOOL.exists():
        pytest.skip("promtool is not built: scripts/promtool builds it (make test does, with Go)")
    return subprocess.run(
        [str(PROMTOOL), *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )


def test_prometheus_accepts_the_rules() -> None:
    done = _promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in done.stdout


def test_every_alert_fires_on_its_series_in_prometheus_own_rule_tests() -> None:
    # alerts_test.yml: each alert on the series it is meant for, and series just short of it.
    tested = {
        case["alertname"]
        for test in _load("alerts_test.yml")["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == set(IDS), f"alerts without a firing test: {sorted(set(IDS) - tested)}"
    done = _promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
