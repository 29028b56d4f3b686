"""junit.xml: one test case per SLO, so CI systems list each assertion by name."""

from typing import Any
from xml.etree import ElementTree as ET


def build_junit(summary: dict[str, Any]) -> bytes:
    slos = summary["slos"]
    failures = sum(1 for s in slos if not s["passed"])
    suite = ET.Element(
        "testsuite",
        name=f"harness.{summary['scenario']}",
        tests=str(max(len(slos), 1)),
        failures=str(failures),
        errors="0",
        time=str(summary["totals"].get("duration_s") or 0),
    )
    ET.SubElement(suite, "properties")
    props = suite.find("properties")
    assert props is not None
    for key in ("verdict", "exit_name", "run_dir"):
        ET.SubElement(props, "property", name=key, value=str(summary[key]))
    for slo in slos:
        case = ET.SubElement(suite, "testcase", classname=summary["scenario"], name=slo["name"])
        if not slo["passed"]:
            failure = ET.SubElement(case, "failure", message=slo["detail"], type="SloFailed")
            failure.text = f"{slo['metric']} {slo['op']} {slo['threshold']}: {measured_text(slo)}"
        ET.SubElement(case, "system-out").text = f"{measured_text(slo)}\n{slo['detail']}"
    if summary["verdict"] in ("stack_failed", "error", "interrupted", "incomplete") or not slos:
        case = ET.SubElement(suite, "testcase", classname=summary["scenario"], name="run")
        if summary["verdict"] in ("stack_failed", "error", "interrupted", "incomplete"):
            error = ET.SubElement(case, "error", message=summary["reason"], type=summary["verdict"])
            error.text = summary["reason"]
            suite.set("errors", "1")
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def measured_text(slo: dict[str, Any]) -> str:
    """`measured 41.2 (95% CI 39.8 to 44.1, n=5234, marginal)`: the value and how sure it is."""
    parts = [f"n={slo['samples']}"]
    ci = slo.get("ci")
    if ci is not None:
        low, high = ("unbounded" if v is None else f"{v:g}" for v in ci)
        parts.insert(0, f"{slo['confidence']:.0%} CI {low} to {high}")
    if slo.get("marginal"):
        parts.append("marginal")
    return f"measured {slo['measured']} ({', '.join(parts)})"
