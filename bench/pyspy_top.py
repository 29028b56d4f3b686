"""Where a load process's time goes, per request, from a py-spy collapsed-stack file.

    py-spy record --format raw --rate 250 -o out.txt -- harness run ...   (bench/loadgen.py --profile)
    python bench/pyspy_top.py out.txt --requests 48000 --rate 250 --top 25

Each sample is 1/rate seconds of a thread that was not idle, so `samples / rate / requests` is the
CPU a request cost in that frame. `self` is time in the frame itself; `total` includes what it
called. Line numbers are dropped so one function is one row.
"""

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def frame_name(frame: str) -> str:
    """`send (harness/x.py:12)` -> `send (harness/x.py)`, with the path after site-packages."""
    frame = _LINE.sub(")", frame.strip())
    return re.sub(r"\(.*?site-packages/", "(", frame)


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks[tuple(frame_name(f) for f in stack.split(";"))] += int(count)
    return stacks


def summarise(stacks: Counter[tuple[str, ...]]) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for frames, count in stacks.items():
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return own, total, samples


def table(title: str, counts: Counter[str], samples: int, rate: float, requests: int, top: int) -> str:
    lines = [f"{title}", f"{'share':>6} {'us/req':>7}  frame"]
    for frame, count in counts.most_common(top):
        us = count / rate / requests * 1e6 if requests else float("nan")
        lines.append(f"{count / samples:6.1%} {us:7.1f}  {frame[:150]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--requests", type=int, default=0, help="requests the profiled run made")
    parser.add_argument("--rate", type=float, default=250.0, help="py-spy's --rate")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grep", default="", help="only stacks with a frame containing this")
    args = parser.parse_args(argv)
    stacks = read_stacks(args.file)
    if args.grep:
        stacks = Counter({f: c for f, c in stacks.items() if any(args.grep in x for x in f)})
    own, total, samples = summarise(stacks)
    if not samples:
        print("no samples", file=sys.stderr)
        return 1
    cpu = samples / args.rate
    per = f", {cpu / args.requests * 1e6:.1f} us/request" if args.requests else ""
    print(f"{args.file.name}: {samples} samples = {cpu:.2f} s of busy threads{per}")
    print(table("by self time", own, samples, args.rate, args.requests, args.top))
    print(table("by total time (frame and what it called)", total, samples, args.rate, args.requests,
                args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
