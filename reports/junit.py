"""junit.xml: one test case per SLO, so CI systems list each assertion by name.

The suite's counts (tests, failures, errors, skipped) are counted from its test cases once they
are all written (`set_counts`), so they match the cases for every verdict; the series' and the
soak's junit.xml use the same two helpers.
"""

from typing import Any
from xml.etree import ElementTree as ET

from harness.exitcodes import ExitCode

_COUNTED = (("failure", "failures"), ("error", "errors"), ("skipped", "skipped"))


def build_junit(summary: dict[str, Any]) -> bytes:
    slos = summary["slos"]
    suite = ET.Element("testsuite", name=f"harness.{summary['scenario']}",
                       time=str(summary["totals"].get("duration_s") or 0))
    props = ET.SubElement(suite, "properties")
    for key in ("verdict", "exit_name", "run_dir"):
        ET.SubElement(props, "property", name=key, value=str(summary[key]))
    for slo in slos:
        case = ET.SubElement(suite, "testcase", classname=summary["scenario"], name=slo["name"])
        if not slo["passed"]:
            failure = ET.SubElement(case, "failure", message=slo["detail"], type="SloFailed")
            failure.text = f"{slo['metric']} {slo['op']} {slo['threshold']}: {measured_text(slo)}"
        ET.SubElement(case, "system-out").text = f"{measured_text(slo)}\n{slo['detail']}"
    show_abort(suite, props, summary.get("aborted"))
    verdict_case(suite, summary["scenario"], "run", summary)
    set_counts(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def show_abort(suite: ET.Element, props: ET.Element, aborted: dict[str, Any] | None) -> None:
    """A run an abort SLO stopped: an `aborted` property, and that SLO's case fails with the reason
    (it failed on the data at that moment, even where the seconds after it moved the final value)."""
    if not aborted:
        return
    ET.SubElement(props, "property", name="aborted", value=str(aborted["reason"]))
    if aborted.get("outcome") == "held":  # a reproduction that held early: nothing failed
        return
    for case in suite.findall("testcase"):
        if case.get("name") == aborted.get("slo"):
            reason = str(aborted["reason"])
            failure = case.find("failure")
            if failure is None:  # before its system-out, where the schema has it
                failure = ET.Element("failure", message=reason, type="Aborted")
                case.insert(0, failure)
            failure.text = "\n".join(text for text in (failure.text, reason) if text)
            return


def verdict_case(suite: ET.Element, classname: str, name: str, result: dict[str, Any]) -> None:
    """A test case for the verdict itself, where the other cases do not already show it.

    By exit code, not by verdict word, so a new verdict needs no change here: 2 and above (stack
    failed, interrupted, internal error, ...) is an error, 1 a failure (a run whose load completed
    no request fails with every SLO held), and a suite with no case at all gets a passing one.
    """
    code = int(result["exit_code"])
    outcome = "error" if code >= ExitCode.USAGE_ERROR else "failure" if code == ExitCode.SLO_FAILED else None
    cases = suite.findall("testcase")
    shown = outcome is not None and any(case.find(outcome) is not None for case in cases)
    if shown or (outcome is None and cases):
        return
    case = ET.SubElement(suite, "testcase", classname=classname, name=name)
    if outcome is not None:
        reason = str(result["reason"])
        ET.SubElement(case, outcome, message=reason, type=str(result["verdict"])).text = reason


def set_counts(suite: ET.Element) -> None:
    """tests, failures, errors and skipped, counted from the suite's test cases."""
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for child, attribute in _COUNTED:
        suite.set(attribute, str(sum(1 for case in cases if case.find(child) is not None)))


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
