"""The GPU memory stressor: a small process that takes and holds device memory beside the stack.

    python -m harness.gpu.stressor --device 0 --stdin [--pidfile F] [--chunk BYTES]
    python -m harness.gpu.stressor --device 0 --take 2GiB [--hold 30]    (by hand)
    python -m harness.gpu.stressor --device 0 --probe

It is a co-located job or a second model as the serving stack meets it: another process with its
own CUDA context (the device's primary context) holding `cuMemAlloc` memory, so the stack's next
allocation finds less free. Memory is taken in chunks (256 MiB by default); when the driver
answers CUDA_ERROR_OUT_OF_MEMORY the chunk is halved down to 16 MiB before giving up, so what
it reports holding is what it really got, and each refusal is counted.

With `--stdin`, each line read is a JSON target, `{"amount": BYTES}` or `{"fraction": F}` (of the
memory that was free when it started, after its own context was made); each is the total to
hold, not an increment. End of input frees everything and exits 0, as does SIGTERM. Every change
is one JSON line on stdout:

    {"event": "ready", "device": 0, "name": ..., "pci_bus_id": ..., "free": N, "total": N, ...}
    {"event": "step", "target": N, "held": N, "oom": K, "capped": bool, "error": null, "free": N, ...}
    {"event": "freed", "freed": N, "held": 0, "free": N, "seconds": S}
    {"event": "failed", "reason": "no_driver|no_device|out_of_range|cuda_error", "error": "..."}

`--probe` initialises the driver, names the device and exits, without making a context (which
would itself take device memory): how `gpu_memory_stress` checks at validation that it can run.

Standard library and harness.gpu.cuda only (no pydantic, no psutil): the device check runs it on
a lent GPU machine that has neither.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
from typing import Any

from harness.gpu import cuda as cu
from harness.gpu.pidfile import write_pidfile

CHUNK = 256 << 20
MIN_CHUNK = 16 << 20
EXIT_FAILED = 3  # the driver, the device or the context could not be had: nothing was taken

_UNITS = {"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_bytes(text: str) -> int:
    """`4096`, `256MiB`, `1.5GiB`: the sizes a person types here (the harness sends plain bytes)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (write 4096, 256MiB or 2GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


class Holder:
    """The chunks held on one device, grown and shrunk toward a target."""

    def __init__(self, cuda: cu.Cuda, chunk: int = CHUNK, min_chunk: int = MIN_CHUNK):
        self.cuda = cuda
        self.chunk = chunk
        self.min_chunk = min(min_chunk, chunk)
        self.chunks: list[tuple[int, int]] = []  # (address, bytes), in the order taken
        self.oom_total = 0

    @property
    def held(self) -> int:
        return sum(size for _, size in self.chunks)

    def reach(self, target: int) -> dict[str, Any]:
        """Free or take memory until `target` bytes are held, or the driver refuses the smallest
        chunk. Returns what happened: held, OOM refusals in this step, another error if any."""
        while self.chunks and self.held > target:
            address, _ = self.chunks.pop()
            self.cuda.free(address)
        oom, error = 0, None
        size = self.chunk
        while self.held < target:
            size = min(size, target - self.held)
            try:
                self.chunks.append((self.cuda.alloc(size), size))
            except cu.CudaError as exc:
                if exc.code != cu.OUT_OF_MEMORY:
                    error = exc.name
                    break
                oom += 1
                if size <= self.min_chunk:
                    break  # even the smallest chunk is refused: the device is full
                size = max(self.min_chunk, size // 2)
        self.oom_total += oom
        return {"target": target, "held": self.held, "chunks": len(self.chunks), "oom": oom,
                "capped": self.held < target, "error": error}

    def release(self) -> tuple[int, int]:
        """Free every chunk: (bytes freed, chunks the driver would not free). Those are freed
        when the process exits anyway; the count says the driver was in trouble."""
        freed, refused = 0, 0
        while self.chunks:
            address, size = self.chunks.pop()
            try:
                self.cuda.free(address)
                freed += size
            except cu.CudaError:
                refused += 1
        return freed, refused


def target_of(line: str, free_at_start: int) -> int:
    """Bytes to hold for one stdin line: `{"amount": N}` or `{"fraction": F}` (also a bare number)."""
    ask = json.loads(line)
    if isinstance(ask, (int, float)) and not isinstance(ask, bool):
        return int(ask)
    if "amount" in ask:
        return int(ask["amount"])
    return int(float(ask["fraction"]) * free_at_start)


def _emit(record: dict[str, Any]) -> None:
    try:
        print(json.dumps(record), flush=True)
    except BrokenPipeError:
        # Nobody reads any more (the harness was killed): freeing still happens, silently.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class _Stop(Exception):
    """SIGTERM: free what is held and exit."""


def _on_term(signum: int, frame: Any) -> None:
    raise _Stop()


def _name_myself(name: bytes = b"harness-gpumem") -> None:
    """A name `ps`, nvidia-smi's process list and a kernel log show (PR_SET_NAME, 15 bytes)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _failure(exc: BaseException, device: int, count: int | None = None) -> dict[str, Any]:
    if isinstance(exc, cu.DriverMissing):
        return {"event": "failed", "reason": "no_driver", "error": str(exc)}
    assert isinstance(exc, cu.CudaError)
    if exc.code in (cu.NO_DEVICE, cu.STUB_LIBRARY):
        return {"event": "failed", "reason": "no_device" if exc.code == cu.NO_DEVICE else "no_driver",
                "error": str(exc)}
    if exc.code == cu.INVALID_DEVICE and count is not None:
        return {"event": "failed", "reason": "out_of_range", "count": count,
                "error": f"device {device} out of range: the driver sees {count} device(s)"}
    return {"event": "failed", "reason": "cuda_error", "error": str(exc)}


def probe(device: int, cuda: cu.Cuda | None = None) -> dict[str, Any]:
    """What validation needs: the driver loads, the device exists, its name and size. No context."""
    count = None
    try:
        cuda = cuda or cu.Cuda()
        cuda.init()
        count = cuda.device_count()
        if not 0 <= device < count:
            raise cu.CudaError("cuDeviceGet", cu.INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE")
        dev = cuda.device(device)
        return {"event": "probe", "ok": True, "device": device, "count": count, "name": cuda.device_name(dev),
                "pci_bus_id": cuda.pci_bus_id(dev), "total": cuda.total_memory(dev),
                "driver_version": cuda.driver_version()}
    except (cu.DriverMissing, cu.CudaError) as exc:
        return {**_failure(exc, device, count), "event": "probe", "ok": False, "device": device}


class _Failed(Exception):
    """The stressor cannot run: its `failed` record."""

    def __init__(self, record: dict[str, Any]):
        super().__init__(record.get("error"))
        self.record = record


def open_context(device: int, cuda: cu.Cuda | None = None) -> tuple[cu.Cuda, int, dict[str, Any]]:
    """Driver, CUdevice and the ready record (free/total as seen once the context exists)."""
    try:
        cuda = cuda or cu.Cuda()
    except cu.DriverMissing as exc:
        raise _Failed(_failure(exc, device)) from None
    found = probe(device, cuda)
    if not found["ok"]:
        raise _Failed({**found, "event": "failed"})
    dev = cuda.device(device)
    try:
        cuda.use_primary_context(dev)
        free, total = cuda.memory_info()
    except cu.CudaError as exc:
        raise _Failed(_failure(exc, device)) from None
    ready = {"event": "ready", "pid": os.getpid(), "device": device, "name": found["name"],
             "pci_bus_id": found["pci_bus_id"], "free": free, "total": total,
             "driver_version": found["driver_version"]}
    return cuda, dev, ready


def serve(holder: Holder, free_at_start: int, stdin: Any = None) -> None:
    """Targets from stdin until end of input. A plain blocking read: the harness sends one target
    and waits for its answer, and SIGTERM still interrupts the read (its handler raises)."""
    stdin = stdin or sys.stdin
    while True:
        line = stdin.readline()
        if not line:
            return
        if not line.strip():
            continue
        started = time.monotonic()
        result = holder.reach(target_of(line, free_at_start))
        _emit({"event": "step", **result, "seconds": round(time.monotonic() - started, 3),
               "free": _free(holder.cuda)})


def _free(cuda: cu.Cuda) -> int | None:
    try:
        return cuda.memory_info()[0]
    except cu.CudaError:
        return None


def _hold_for(seconds: float | None) -> None:
    deadline = None if seconds is None else time.monotonic() + seconds
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.2)


def main(argv: list[str] | None = None, cuda: cu.Cuda | None = None) -> int:
    doc = (__doc__ or "").splitlines()[0]
    parser = argparse.ArgumentParser(prog="harness.gpu.stressor", description=doc)
    parser.add_argument("--device", type=int, default=0, help="CUDA device ordinal (as the stack sees it)")
    parser.add_argument("--probe", action="store_true", help="check the driver and device, take nothing")
    parser.add_argument("--stdin", action="store_true", help="read JSON targets from standard input")
    parser.add_argument("--take", type=parse_bytes, default=0)
    parser.add_argument("--fraction", type=float, default=None, help="of free memory, instead of --take")
    parser.add_argument("--hold", type=float, default=None, help="seconds (default: until SIGTERM)")
    parser.add_argument("--chunk", type=parse_bytes, default=CHUNK)
    parser.add_argument("--pidfile", default=None)
    args = parser.parse_args(argv)
    if args.probe:
        _emit(probe(args.device, cuda))
        return 0
    _name_myself()
    if args.pidfile:
        write_pidfile(args.pidfile)  # before the driver: a stressor stuck in cuInit can be ended too
    signal.signal(signal.SIGTERM, _on_term)
    started = time.monotonic()
    holder: Holder | None = None
    try:
        cuda, _, ready = open_context(args.device, cuda)
        _emit(ready)
        holder = Holder(cuda, chunk=args.chunk)
        if args.stdin:
            serve(holder, ready["free"])
        else:
            target = int(args.fraction * ready["free"]) if args.fraction is not None else args.take
            _emit({"event": "step", **holder.reach(target), "free": _free(cuda)})
            _hold_for(args.hold)
    except _Failed as failed:
        _emit(failed.record)
        return EXIT_FAILED
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if holder is not None:
        freed, refused = holder.release()
        _emit({"event": "freed", "freed": freed, "held": holder.held, "free_refused": refused,
               "free": _free(holder.cuda), "oom_total": holder.oom_total,
               "seconds": round(time.monotonic() - started, 3)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
