"""TorchServe knowledge shared by its stack, observer, metrics and report.

`logparse` reads the frontend's log lines, `retries` turns them into a retry schedule and a
not-recoverable verdict, `management` reads the management API.
"""
