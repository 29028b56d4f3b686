"""Soak mode: one scenario's load shape and fault timeline, repeated cycle after cycle for hours.

`harness soak SCENARIO --for 8h` starts the stack once and drives the load without a pause; the
scenario's load (its `duration` or `stages`) and its faults are one cycle, and cycle k's faults
are the scenario's timeline shifted by k cycles. Each cycle's records go to its own journal
(`cycles/NNNN/journal.jsonl`, with that cycle's report.html, summary.json and junit.xml), one
compact record per cycle is appended to `soak.jsonl` as the soak goes, and `soak.html` /
`soak.json` show the trends: the target's RSS slope, error windows per cycle, p99 drift and the
harness's own RSS.
"""
