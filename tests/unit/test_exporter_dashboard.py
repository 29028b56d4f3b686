"""The shipped Grafana dashboard: importable as it is, and every query names a metric the exporter has."""

import json
import re
from pathlib import Path
from typing import Any

from harness.exporter.metrics import BASE_LABELS, METRICS, exported_samples

DASHBOARD = Path(__file__).resolve().parents[2] / "reports" / "grafana" / "harness-run.json"
# PromQL words that look like names: functions, aggregations, keywords, Grafana's variables.
_NOT_METRICS = {"sum", "by", "rate", "increase", "histogram_quantile", "le", "without", "max", "min",
                "avg", "count", "label_values", "__rate_interval", "__interval", "scenario", "run_id",
                "kind", "quantile", "event"}
_NAME = re.compile(r"(?<![\w$\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w\"'])")


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs + variables


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: names outside label matchers `{...}` and strings."""
    outside = re.sub(r"\{[^}]*\}", " ", re.sub(r"\"[^\"]*\"", '""', expr))
    outside = re.sub(r"\[[^\]]*\]", " ", outside)  # range selectors: [$__rate_interval]
    outside = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", outside)  # labels
    names = {m for m in _NAME.findall(outside) if not re.fullmatch(r"\d.*", m)}
    return names - _NOT_METRICS


def test_it_is_json_grafana_imports() -> None:
    dashboard = load()
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert {"x", "y", "w", "h"} <= set(grid) and grid["x"] + grid["w"] <= 24
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_the_datasource_is_a_variable_every_query_uses() -> None:
    dashboard = load()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    source = variables["datasource"]
    assert source["type"] == "datasource" and source["query"] == "prometheus"
    uses = [p["datasource"] for p in dashboard["panels"]]
    uses += [t["datasource"] for p in dashboard["panels"] for t in p["targets"]]
    uses += [a["datasource"] for a in dashboard["annotations"]["list"] if "expr" in a]
    uses += [v["datasource"] for v in variables.values() if v["type"] == "query"]
    assert all(u == {"type": "prometheus", "uid": "${datasource}"} for u in uses)


def test_every_query_names_only_metrics_the_exporter_exports() -> None:
    exported = exported_samples()
    named: set[str] = set()
    for expr in queries(load()):
        names = metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} names {sorted(names - exported)}: not exported"
        named |= names
    assert {"harness_requests_total", "harness_request_errors_total", "harness_latency_seconds",
            "harness_fault_active", "harness_slo_measured", "harness_slo_threshold", "harness_slo_passed",
            "harness_exit_code"} <= named


def test_every_query_selects_the_chosen_scenario_and_run() -> None:
    for expr in queries(load()):
        if expr.startswith("label_values(harness_run_info, scenario)"):
            continue
        assert 'scenario=~"$scenario"' in expr, expr
        if not expr.startswith("label_values"):
            assert 'run_id=~"$run_id"' in expr, expr


def test_labels_in_queries_exist_on_the_metrics_they_select() -> None:
    labels = {m.name: {*BASE_LABELS, *m.labels} for m in METRICS}
    labels.update({s: {*BASE_LABELS, *m.labels, "le"} for m in METRICS for s in m.samples
                   if s.endswith("_bucket")})
    for expr in queries(load()):
        for name, matchers in re.findall(r"([a-z_:]+)\{([^}]*)\}", expr):
            used = set(re.findall(r"(\w+)\s*[=!~]+", matchers))
            assert used <= labels[name], f"{expr!r}: {name} has no label {sorted(used - labels[name])}"
        for grouped, name in re.findall(r"by \(([^)]*)\) \((?:\w+\()?([a-z_:]+)\{", expr):
            kept = {label.strip() for label in grouped.split(",")}
            assert kept <= labels[name], f"{expr!r}: {name} has no label {sorted(kept - labels[name])}"


def test_fault_windows_are_annotations_from_the_fault_gauge() -> None:
    annotations = [a for a in load()["annotations"]["list"] if "expr" in a]
    faults = [a for a in annotations if "harness_fault_active" in a["expr"]]
    assert len(faults) == 1 and faults[0]["enable"] and faults[0]["expr"].endswith("== 1")
    assert "{{name}}" in faults[0]["titleFormat"]


def test_the_metric_name_reader() -> None:
    expr = 'histogram_quantile(0.9, sum by (le) (rate(harness_x_bucket{a="b c"}[5m]))) / y_total'
    assert metric_names(expr) == {"harness_x_bucket", "y_total"}
    assert metric_names('max by (run_id, slo) (harness_slo_passed{index="0"}) == 1') == {"harness_slo_passed"}
