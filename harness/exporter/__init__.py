"""The harness's own figures as Prometheus metrics, while a run goes, and pushed at its end.

A feature (`harness.exporter.feature`) turned on by `HARNESS_METRICS_PORT` (or `--metrics-port`):
it serves the run's per-second figures on 127.0.0.1, read from the journal as it is written
(`follow`: the same records `harness report` reads, so the two never disagree), and once the
verdict is known its SLO results; with `HARNESS_PUSHGATEWAY` it pushes the final figures.
`metrics` names every metric; `reports/grafana/harness-run.json` is a dashboard for them.
"""
