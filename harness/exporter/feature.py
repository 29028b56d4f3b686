"""The exporter as a feature: off unless a port or a Pushgateway is given (see settings).

`before_start` starts the session (the first hook of a run, so a scrape sees the stack start);
`after_report` (called by `Run.execute` once the reports are written) finishes it with
summary.json: the SLO results and verdict, the push, the linger.

This module stays light (scenario validation discovers every feature): the session, and with it
prometheus_client and hdrh, is imported by the hook.
"""

import json
import logging
import os
from pathlib import Path
from typing import Any

from harness.features import Feature, RunHooksContext

log = logging.getLogger(__name__)
SESSION_KEY = "metrics_export.session"  # RunHooksContext.services: the run's ExportSession


def before_start(ctx: RunHooksContext) -> None:
    from harness.exporter.follow import journal_paths
    from harness.exporter.session import ExportSession
    from harness.exporter.settings import settings_from
    from harness.exporter.state import RunFigures

    settings = settings_from(ctx.services, os.environ)  # UsageError: the run stops before the stack starts
    if not settings.enabled:
        return
    figures = RunFigures(scenario=ctx.scenario.name, run_id=ctx.run_dir.name, stack=ctx.scenario.stack.kind)
    session = ExportSession(settings, figures, journal_paths(ctx.journal), ctx.journal)
    session.start()
    ctx.services[SESSION_KEY] = session


def after_report(ctx: RunHooksContext) -> None:
    """summary.json is written: the verdict and SLO results, the push, the linger. Never raises."""
    session = ctx.services.pop(SESSION_KEY, None)
    if session is None:
        return
    try:
        session.finish(read_summary(ctx.run_dir))
    except Exception:  # noqa: BLE001 - the run is judged and reported: nothing here may change its exit
        log.exception("the exporter could not finish")
        session.close()


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary.json; a soak's soak.json (its limits are its SLOs); {} if neither reads."""
    for name in ("soak.json", "summary.json"):
        try:
            summary = json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict):
            summary.setdefault("slos", summary.get("limits") or [])
            return summary
    return {}


FEATURE = Feature(name="exporter", before_start=before_start, after_report=after_report)
