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
            failure.text = f"{slo['metric']} {slo['op']} {slo['threshold']}: measured {slo['measured']}"
    if summary["verdict"] in ("stack_failed", "error", "interrupted", "incomplete") or not slos:
        case = ET.SubElement(suite, "testcase", classname=summary["scenario"], name="run")
        if summary["verdict"] in ("stack_failed", "error", "interrupted", "incomplete"):
            error = ET.SubElement(case, "error", message=summary["reason"], type=summary["verdict"])
            error.text = summary["reason"]
            suite.set("errors", "1")
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
