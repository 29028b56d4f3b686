"""report.html of a real run with a fault, opened in headless Chromium: the charts draw, hover
shows values, zoom on one chart moves all charts on the time axis, and nothing logs an error.

The run is `scenarios/faults/triton-server-freeze.yaml` (a real Triton frozen for 4 s under
load): its freeze is a stretch with no successful request, which must be a gap in the latency
line. The screenshots are saved in the test's folder (printed) and, where
HARNESS_SCREENSHOTS names a folder, copied there.
"""

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser import chromium, console_errors, full_page_screenshot, needs_browser
from tests.conftest import ROOT, only_run_dir, run_harness, triton_available
from tests.reportpage import chart_specs

pytestmark = [pytest.mark.real, needs_browser,
              pytest.mark.skipif(not triton_available(), reason="needs nvidia-pytriton")]
FREEZE = (4.0, 8.0)  # the scenario's freeze, in seconds from the start of the load


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report-browser")
    scenario = ROOT / "scenarios/faults/triton-server-freeze.yaml"
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=folder, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return only_run_dir(folder / "runs")


def _keep(shot: Path) -> None:
    print(f"screenshot: {shot}")
    target = os.environ.get("HARNESS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


def _ranges(driver: Any) -> list[dict[str, Any]]:
    return list(driver.execute_script("return window.HarnessCharts.ranges()"))


def test_the_freeze_is_a_gap_in_the_latency_line_not_a_slope(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    (latency,) = [s for s in chart_specs(html) if s["title"] == "Latency of successful requests"]
    p99 = next(line for line in latency["series"] if line["label"] == "p99")["points"]
    in_freeze = [y for x, y in p99 if FREEZE[0] + 1.0 < x < FREEZE[1] - 0.5]
    assert in_freeze and all(y is None for y in in_freeze), p99
    (throughput,) = [s for s in chart_specs(html) if s["title"] == "Throughput"]
    ok = next(line for line in throughput["series"] if line["label"] == "ok/s")["points"]
    assert [y for x, y in ok if FREEZE[0] + 1.0 < x < FREEZE[1] - 0.5] and all(
        y == 0 for x, y in ok if FREEZE[0] + 1.0 < x < FREEZE[1] - 0.5)  # a count: zero, drawn as zero
    print(f"report.html: {len(html.encode()) / 1024:.0f} KiB")


def test_the_report_draws_every_chart_and_hover_and_zoom_work(run_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with chromium(tmp_path / "profile") as driver:
        driver.get((run_dir / "report.html").as_uri())
        figures = driver.find_elements(By.CSS_SELECTOR, "figure.hchart")
        assert len(figures) >= 4  # server charts, throughput, latency, distribution, fault panels
        for figure in figures:
            title = figure.find_element(By.TAG_NAME, "figcaption").text
            assert figure.get_attribute("data-rendered") == "1", title
            assert int(figure.get_attribute("data-points") or 0) > 0, title
            assert figure.find_elements(By.CSS_SELECTOR, "canvas"), title
        assert console_errors(driver) == []

        throughput = next(f for f in figures if f.find_element(By.TAG_NAME, "figcaption").text
                          == "Throughput")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", throughput)
        over = throughput.find_element(By.CSS_SELECTOR, ".u-over")
        ActionChains(driver).move_to_element(over).perform()  # the middle of the load
        values = [v.text for v in throughput.find_elements(By.CSS_SELECTOR, ".u-legend .u-value")]
        assert values[0].endswith(" s") and values[1].endswith(" req/s"), values  # t, then ok/s
        float(values[1].split()[0])  # a number, not the dash of no value

        before = _ranges(driver)
        synced = [r for r in before if r["sync"]]
        assert len(synced) >= 3 and len({(r["min"], r["max"]) for r in synced}) == 1, synced  # one time axis
        width = over.size["width"]
        ActionChains(driver).move_to_element_with_offset(over, -width // 4, 0).click_and_hold() \
            .move_by_offset(width // 4, 0).release().perform()  # drag across the middle quarter: zoom
        after = [r for r in _ranges(driver) if r["sync"]]
        assert len({(r["min"], r["max"]) for r in after}) == 1, after  # all followed
        assert after[0]["max"] - after[0]["min"] < 0.5 * (synced[0]["max"] - synced[0]["min"]), after
        unsynced = [(r["min"], r["max"]) for r in before if not r["sync"]]
        assert [(r["min"], r["max"]) for r in _ranges(driver) if not r["sync"]] == unsynced  # their own axes

        ActionChains(driver).double_click(over).perform()  # back to the whole run
        home = [r for r in _ranges(driver) if r["sync"]]
        assert (home[0]["min"], home[0]["max"]) == (synced[0]["min"], synced[0]["max"]), home
        assert console_errors(driver) == []
        _keep(full_page_screenshot(driver, tmp_path / "report.png"))


def test_the_report_links_the_run_folder_files(run_dir: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    with chromium(tmp_path / "profile") as driver:
        driver.get((run_dir / "report.html").as_uri())
        links = {a.text: a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "p.files a")}
        for name in ("journal.jsonl", "summary.json", "junit.xml", "harness.log"):
            assert name in links, links
            assert Path(links[name].removeprefix("file://")).is_file(), links[name]


def test_the_live_view_follows_a_real_run_and_ends_with_it(tmp_path: Path) -> None:
    import subprocess
    import time
    import urllib.request

    from selenium.webdriver.common.by import By

    from tests.conftest import HARNESS

    scenario = ROOT / "scenarios/faults/triton-server-freeze.yaml"
    command = [*HARNESS, "run", str(scenario), "--runs-dir", "runs", "--no-progress", "--web"]
    harness = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        assert harness.stdout is not None
        url = ""
        for line in harness.stdout:
            if line.startswith("live view: "):
                url = line.split()[2]
                break
        assert url.startswith("http://127.0.0.1:"), url
        with chromium(tmp_path / "profile") as driver:
            driver.get(url)
            versions, points = set(), []
            deadline = time.monotonic() + 200
            while time.monotonic() < deadline:
                seen = driver.execute_script(_LIVE_STATE)  # one read: the page redraws between reads
                if seen["version"] and seen["points"] is not None:
                    versions.add(seen["version"])
                    points.append(seen["points"])
                if seen["ended"]:
                    break
                time.sleep(1.0)
            assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-ended") == "1"
            assert len(versions) >= 3, versions  # redrawn as the journal grew
            assert points and points[-1] > points[0], points  # more seconds each time
            assert "The run ended" in driver.find_element(By.ID, "live-status").text
            assert console_errors(driver) == []
            _keep(full_page_screenshot(driver, tmp_path / "live.png"))
        assert harness.wait(60) == 0
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
    with pytest.raises(OSError):  # the watcher ended with the run
        urllib.request.urlopen(url, timeout=2)


_LIVE_STATE = """
var figs = Array.from(document.querySelectorAll("figure.hchart"));
var t = figs.find(function (f) { return f.querySelector("figcaption").textContent === "Throughput"; });
return {version: document.body.dataset.version || null, ended: document.body.dataset.ended === "1",
        points: t && t.dataset.rendered === "1" ? parseInt(t.dataset.points, 10) : null};
"""


def test_the_history_page_draws_its_charts_with_the_change_point(tmp_path: Path) -> None:
    """The store's history page uses the same charts (the runs are made by the real report
    writer from synthetic journals: this is the page's test, the store has its own)."""
    pytest.importorskip("sqlalchemy")
    from selenium.webdriver.common.by import By

    from harness import cli
    from tests.unit.store_runs import make_history

    make_history(tmp_path / "runs", [5.0] * 10 + [8.0] * 6, noise=0.02)
    store = str(tmp_path / "results.db")
    assert cli.main(["store", "import", str(tmp_path / "runs"), "--store", store]) == 0
    page = tmp_path / "history.html"
    assert cli.main(["history", "nightly", "--store", store, "--html", str(page)]) == 0
    with chromium(tmp_path / "profile") as driver:
        driver.get(page.as_uri())
        figures = driver.find_elements(By.CSS_SELECTOR, "figure.hchart")
        assert len(figures) >= 4
        assert all(f.get_attribute("data-rendered") == "1" and int(f.get_attribute("data-points")) > 0
                   for f in figures)
        assert console_errors(driver) == []
        _keep(full_page_screenshot(driver, tmp_path / "history.png"))
