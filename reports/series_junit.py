"""junit.xml of a series: one test case per SLO, judged over the repetitions (N of M)."""

from typing import Any
from xml.etree import ElementTree as ET

from reports.junit import set_counts, verdict_case


def build_series_junit(series: dict[str, Any]) -> bytes:
    slos = series["slos"]
    suite = ET.Element("testsuite", name=f"harness.{series['scenario']}.series")
    props = ET.SubElement(suite, "properties")
    for key in ("verdict", "exit_name", "series_dir", "repeat", "completed"):
        ET.SubElement(props, "property", name=key, value=str(series[key]))
    for slo in slos:
        case = ET.SubElement(suite, "testcase", classname=series["scenario"], name=slo["name"])
        summary = (f"held in {slo['passes']} of {slo['judged']} repetitions run "
                   f"(needs {slo['required']} of {slo['of']})")
        if slo["status"] == "failed":
            ET.SubElement(case, "failure", message=summary, type="SloFailed").text = _runs_text(slo)
        elif slo["status"] == "undecided":
            ET.SubElement(case, "skipped", message=f"undecided: {summary}")
        ET.SubElement(case, "system-out").text = f"{summary}\n{_runs_text(slo)}"
    verdict_case(suite, series["scenario"], "series", series)
    set_counts(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _runs_text(slo: dict[str, Any]) -> str:
    lines = []
    for run in slo["runs"]:
        ci = run.get("ci")
        interval = ""
        if ci is not None:
            low, high = ("unbounded" if v is None else f"{v:g}" for v in ci)
            interval = f", {run['confidence']:.0%} CI {low} to {high}"
        marginal = ", marginal" if run.get("marginal") else ""
        lines.append(f"repetition {run['repetition']}: {'held' if run['passed'] else 'FAILED'}, "
                     f"measured {run['measured']} (n={run['samples']}{interval}{marginal})")
    return "\n".join(lines)
