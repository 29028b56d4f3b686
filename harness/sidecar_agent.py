"""A stand-in for a co-located agent (a config agent, a log shipper): it wakes every `--every`,
touches a heartbeat file and holds `--hold` of memory, until it is stopped or killed.

    python -m harness.sidecar_agent --every 1s --hold 20MiB --heartbeat FILE
"""

import argparse
import signal
import sys
import time
from pathlib import Path

from harness.durations import parse_duration
from harness.sizes import parse_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.sidecar_agent")
    parser.add_argument("--every", type=parse_duration, default=1.0)
    parser.add_argument("--hold", type=parse_size, default=0)
    parser.add_argument("--heartbeat", type=Path, default=None)
    args = parser.parse_args(argv)
    held = bytearray(b"\x01" * args.hold)  # written, so resident
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    beats = 0
    while True:
        beats += 1
        if args.heartbeat is not None:
            args.heartbeat.write_text(f"{beats} {time.time():.3f} {len(held)}\n", encoding="ascii")
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
