"""`--metrics-port`, `--pushgateway` and `--metrics-linger` on `run` and `soak` (a `harness.commands`
plugin: the core's command line names no exporter option).

Each flag is checked as it is parsed (a bad one is one line naming it, exit 2, before any run
folder is made) and then stands for its variable in this process, where the exporter's
`before_start` reads it, as the store's `--store` does.
"""

import argparse
import os
from collections.abc import Callable
from typing import Any

from harness.errors import UsageError
from harness.exporter.settings import (
    LINGER_ENV,
    PORT_ENV,
    PUSHGATEWAY_ENV,
    parse_linger,
    parse_port,
    parse_pushgateway,
)

Check = Callable[[str, str], Any]


def _flag(variable: str, check: Check) -> type[argparse.Action]:
    class Flag(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            try:
                check(str(values), option_string or self.dest)
            except UsageError as exc:
                parser.error(str(exc))  # argparse's one line and usage, exit 2
            setattr(namespace, self.dest, values)
            os.environ[variable] = str(values)

    return Flag


def register(sub: Any) -> None:
    for name in ("run", "soak"):
        parser = sub.choices.get(name)
        if parser is None:
            continue
        parser.add_argument("--metrics-port", action=_flag(PORT_ENV, parse_port), metavar="PORT",
                            help=f"serve the run's figures for Prometheus on 127.0.0.1:PORT (0: a free "
                                 f"port; default: ${PORT_ENV}, else none)")
        parser.add_argument("--pushgateway", action=_flag(PUSHGATEWAY_ENV, parse_pushgateway), metavar="URL",
                            help=f"push the final figures to this Pushgateway (default: ${PUSHGATEWAY_ENV})")
        parser.add_argument("--metrics-linger", action=_flag(LINGER_ENV, parse_linger), metavar="SECONDS",
                            help=f"keep serving the final figures this long after the run, so Prometheus "
                                 f"scrapes the verdict (default: ${LINGER_ENV}, else 0)")
