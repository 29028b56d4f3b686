"""Locust's own outputs for the load part of a run, written by Locust's own functions.

What `locust --csv locust --html locust_report.html` would leave, in the run folder:
`locust_stats.csv`, `locust_stats_history.csv` (a row a second while the load runs),
`locust_failures.csv`, `locust_exceptions.csv` and `locust_report.html`. Locust's statistics
see every request the journal records (both hear the same `request` event), so their totals
agree with summary.json's; with load workers they are the master's, merged from the workers.

Locust's `main` does three things the harness, which uses Locust as a library, must do itself:
fill `stats.history` for the HTML report's charts (`stats.stats_history`), run the CSV writer's
greenlet, and render the report after the runner quit. A soak resets Locust's statistics every
cycle (LoadDriver.reset_locust_stats): its Locust files hold the last cycle's.
"""

import csv
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust import stats
from locust.env import Environment
from locust.html import get_html_report

log = logging.getLogger(__name__)
PREFIX = "locust"
HTML_NAME = f"{PREFIX}_report.html"
CSV_NAMES = tuple(f"{PREFIX}_{part}.csv" for part in ("stats", "stats_history", "failures", "exceptions"))
SCRIPT = "scenario.yaml"  # what the report names as its "script": the run folder's copy of the scenario


class LocustOutputs:
    def __init__(self, env: Environment, run_dir: Path):
        self.env = env
        self.run_dir = run_dir
        self._writer: stats.StatsCSVFileWriter | None = None
        self._greenlets: list[gevent.Greenlet] = []

    @classmethod
    def begin(cls, env: Environment | None, run_dir: Path) -> "LocustOutputs | None":
        """Once the users are started (the runner exists); None where there is no load."""
        if env is None or env.runner is None:
            return None
        outputs = cls(env, run_dir)
        try:
            outputs.start()
        except Exception:  # noqa: BLE001 - Locust's files are extras: never the run's failure
            log.exception("Locust's CSV writer did not start")
            outputs.stop_greenlets()
        return outputs

    def start(self) -> None:
        assert self.env.runner is not None
        self._greenlets.append(gevent.spawn(stats.stats_history, self.env.runner))
        self._writer = stats.StatsCSVFileWriter(self.env, stats.PERCENTILES_TO_REPORT,
                                                str(self.run_dir / PREFIX), full_history=False)
        self._greenlets.append(gevent.spawn(self._writer.stats_writer))

    def stop_greenlets(self) -> None:
        """End the two greenlets this object spawned (Locust's history and CSV loops), no others."""
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        gevent.joinall(self._greenlets, timeout=5)
        self._greenlets = []

    def finish(self) -> dict[str, Any]:
        """After the runner quit (a master has its workers' last statistics then): the final CSV
        rows and the HTML report. For the journal: the files, and Locust's totals. Never raises."""
        self.stop_greenlets()
        try:
            self._final_csv()
            if self.env.locustfile is None:
                self.env.locustfile = SCRIPT
            html = get_html_report(self.env, show_download_link=False)
            (self.run_dir / HTML_NAME).write_text(html, encoding="utf-8")
        except Exception as exc:  # noqa: BLE001 - recorded in the journal; the run's own results stand
            log.exception("Locust's outputs were not written")
            return {"error": repr(exc), "files": self.written()}
        total = self.env.stats.total
        return {"files": self.written(), "requests": total.num_requests, "failures": total.num_failures}

    def _final_csv(self) -> None:
        if self._writer is not None:
            # The writer's greenlet wrote its last row up to a second before the stop: one more
            # row with the final figures (Locust has no public call for a single history row).
            self._writer._stats_history_data_rows(self._writer.stats_history_csv_writer, time.time())
            self._writer.close_files()
        # The overwritten files, final: Locust's own writers, to a fresh file each.
        plain = stats.StatsCSV(self.env, stats.PERCENTILES_TO_REPORT)
        for name, write in ((CSV_NAMES[0], plain.requests_csv), (CSV_NAMES[2], plain.failures_csv),
                            (CSV_NAMES[3], plain.exceptions_csv)):
            with (self.run_dir / name).open("w", newline="", encoding="utf-8") as handle:
                write(csv.writer(handle))

    def written(self) -> list[str]:
        return [name for name in (*CSV_NAMES, HTML_NAME) if (self.run_dir / name).exists()]
