"""Distributed load's command-line options and plan, without importing Locust (or gevent).

The parser is built for every `harness` command, so nothing here may patch the standard library.
"""

import argparse
from dataclasses import dataclass

from harness.errors import UsageError

# The default of --workers, for CI that runs every scenario distributed (read by harness.clienv).
WORKERS_ENV = "HARNESS_WORKERS"


@dataclass
class WorkerPlan:
    """How many workers a run uses and where its master listens."""

    local: int = 0
    remote: int = 0  # started elsewhere with `harness worker --master HOST:PORT`
    bind_host: str = "127.0.0.1"
    bind_port: int = 0  # 0: any free port (only for local workers)
    join_timeout_s: float = 60.0

    @property
    def expected(self) -> int:
        return self.local + self.remote


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distributed load (Locust master/worker)")
    # No argparse default: None is "not given", so the environment's default can fill it (clienv).
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run the users in N local worker processes; this process is the master "
                            f"(default: ${WORKERS_ENV}, else 0: no workers)")
    group.add_argument("--remote-workers", type=int, default=0, metavar="K",
                       help="also wait for K workers started elsewhere with `harness worker --master`")
    group.add_argument("--master-bind", metavar="HOST:PORT",
                       help="where the master listens (default 127.0.0.1 on a free port)")


def plan_from_args(local: int, remote: int, bind: str | None) -> WorkerPlan | None:
    """The command line's --workers/--remote-workers/--master-bind, checked; None for a local run."""
    if local < 0 or remote < 0:
        raise UsageError("--workers and --remote-workers take a number >= 0")
    if local + remote == 0:
        if bind:
            raise UsageError("--master-bind needs --workers or --remote-workers")
        return None
    plan = WorkerPlan(local=local, remote=remote)
    if bind:
        try:
            plan.bind_host, plan.bind_port = split_master(bind)
        except ValueError as exc:
            raise UsageError(str(exc).replace("--master", "--master-bind")) from None
    elif remote:
        raise UsageError("--remote-workers needs --master-bind HOST:PORT that the other machines can reach")
    return plan


def split_master(text: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) -> (host, port); ValueError with the reason otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--master {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5557")
    return host.strip("[]"), int(port)
