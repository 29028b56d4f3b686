"""Triton-mode trace files, read incrementally while the server writes them.

With `--trace-config triton,file=F --trace-config triton,log-frequency=N` Triton writes every N
collected traces to `F.0`, `F.1`, ... (with log-frequency 0 it writes `F` once, at shutdown).
Each file holds one JSON array of records, each record about one trace `id`:

    {"id": 1, "model_name": "identity", "model_version": 1}            # which model
    {"id": 1, "timestamps": [{"name": "QUEUE_START", "ns": 5041963}]}   # one timestamp
    {"id": 1, "activity": "TENSOR_QUEUE_INPUT", "tensor": {...}}        # level TENSORS

The records of one trace are not in time order (HTTP_SEND_END can come before COMPUTE_START),
and the `ns` values come from a steady clock (time since boot), not the wall clock.

`TraceFileTailer.poll()` reads only what was added since the last poll (it keeps a byte offset
per file), parses the array one element at a time, and keeps an unfinished element for the
next poll, so a file that is still being written (not yet valid JSON) is fine. A trace is handed
out once the array holding its records is closed (`]`), since Triton writes whole traces.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HTTP_MARKERS = ("HTTP_RECV_START", "HTTP_SEND_END")
GRPC_MARKERS = ("GRPC_WAITREAD_END", "GRPC_SEND_END", "GRPC_SEND_START")

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class TensorRecord:
    activity: str  # TENSOR_QUEUE_INPUT, TENSOR_BACKEND_OUTPUT, ...
    name: str
    data: str
    shape: str
    dtype: str


@dataclass
class Trace:
    """Everything recorded about one traced request (one model execution)."""

    id: int
    model_name: str | None = None
    model_version: int | None = None
    request_id: str | None = None
    parent_id: int | None = None
    timestamps: dict[str, list[int]] = field(default_factory=dict)  # name -> ns, in file order
    tensors: list[TensorRecord] = field(default_factory=list)
    source: str | None = None  # the file it came from

    def first(self, name: str) -> int | None:
        values = self.timestamps.get(name)
        return values[0] if values else None

    def last(self, name: str) -> int | None:
        values = self.timestamps.get(name)
        return values[-1] if values else None

    @property
    def protocol(self) -> str:
        """`http`, `grpc`, or `internal` (no endpoint timestamps: ensemble/BLS child, C API)."""
        if any(name in self.timestamps for name in HTTP_MARKERS):
            return "http"
        if any(name in self.timestamps for name in GRPC_MARKERS):
            return "grpc"
        return "internal"

    def events(self) -> list[tuple[str, int]]:
        """All timestamps as (name, ns), in time order."""
        flat = [(name, ns) for name, values in self.timestamps.items() for ns in values]
        return sorted(flat, key=lambda item: (item[1], item[0]))

    def add_record(self, record: dict[str, Any]) -> None:
        """Fold one JSON record of this trace into it."""
        if "model_name" in record:
            self.model_name = str(record["model_name"])
            version = record.get("model_version")
            self.model_version = _int_or_none(version)
            if record.get("request_id") not in (None, ""):
                self.request_id = str(record["request_id"])
            self.parent_id = _int_or_none(record.get("parent_id")) or self.parent_id
        for stamp in record.get("timestamps") or ():
            if isinstance(stamp, dict) and "name" in stamp and "ns" in stamp:
                self.timestamps.setdefault(str(stamp["name"]), []).append(int(stamp["ns"]))
        tensor = record.get("tensor")
        if isinstance(tensor, dict):
            self.tensors.append(
                TensorRecord(
                    activity=str(record.get("activity", "")),
                    name=str(tensor.get("name", "")),
                    data=str(tensor.get("data", "")),
                    shape=str(tensor.get("shape", "")),
                    dtype=str(tensor.get("dtype", "")),
                )
            )

    def merge(self, other: "Trace") -> None:
        """Add the records of another piece of the same trace (same id)."""
        self.model_name = self.model_name or other.model_name
        self.model_version = self.model_version if self.model_version is not None else (
            other.model_version
        )
        self.request_id = self.request_id or other.request_id
        self.parent_id = self.parent_id or other.parent_id
        for name, values in other.timestamps.items():
            self.timestamps.setdefault(name, []).extend(values)
        self.tensors.extend(other.tensors)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def traces_from_records(records: Iterable[dict[str, Any]], source: str | None = None) -> list[Trace]:
    """Group raw records by trace id, in order of first appearance."""
    traces: dict[int, Trace] = {}
    for record in records:
        if not isinstance(record, dict) or "id" not in record:
            continue
        trace_id = _int_or_none(record["id"])
        if trace_id is None:
            continue
        trace = traces.get(trace_id)
        if trace is None:
            trace = traces[trace_id] = Trace(id=trace_id, source=source)
        trace.add_record(record)
    return list(traces.values())


def load_trace_file(path: str | Path) -> list[Trace]:
    """A whole, finished trace file (one JSON array, or several one after another)."""
    tailer = _FileState(Path(path))
    records = tailer.read()
    return traces_from_records(records + tailer.take_open(), source=str(path))


@dataclass
class _FileState:
    """How far one file has been read."""

    path: Path
    offset: int = 0  # bytes consumed: every element before it is parsed
    in_array: bool = False
    batch: list[dict[str, Any]] = field(default_factory=list)  # records of the open array
    closed: list[list[dict[str, Any]]] = field(default_factory=list)  # finished arrays, not taken
    arrays_closed: int = 0
    records: int = 0
    error: str | None = None  # content that is not a trace array; the file is skipped
    restarts: int = 0  # the file shrank (rewritten) and was read again from the start

    def read(self) -> list[dict[str, Any]]:
        """Parse what was added; returns the records of arrays that were closed, in order."""
        if self.error is not None:
            return []
        try:
            size = self.path.stat().st_size
            if size < self.offset:  # rewritten from scratch
                self.offset, self.in_array, self.batch = 0, False, []
                self.restarts += 1
            if size == self.offset:
                return self._take_closed()
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                raw = handle.read()
        except FileNotFoundError:
            return self._take_closed()
        text = raw.decode("utf-8", errors="replace")  # a torn character only ends an open element
        consumed = self._parse(text)
        self.offset += len(text[:consumed].encode("utf-8"))
        return self._take_closed()

    def _parse(self, text: str) -> int:
        """Parse elements from `text`; returns how many characters were fully consumed."""
        pos = 0
        consumed = 0
        end = len(text)
        while True:
            while pos < end and text[pos] in _WHITESPACE:
                pos += 1
            if pos >= end:
                return pos
            char = text[pos]
            if not self.in_array:
                if char != "[":
                    self.error = f"expected '[' at byte {self.offset + consumed}, got {char!r}"
                    return consumed
                self.in_array = True
                pos += 1
                consumed = pos
                continue
            if char == "]":
                self.in_array = False
                self.closed.append(self.batch)
                self.batch = []
                self.arrays_closed += 1
                pos += 1
                consumed = pos
                continue
            if char == ",":
                pos += 1
                consumed = pos
                continue
            try:
                value, pos = _DECODER.raw_decode(text, pos)
            except json.JSONDecodeError:
                return consumed  # incomplete element: read it again next time
            if isinstance(value, dict):
                self.batch.append(value)
                self.records += 1
            consumed = pos

    def _take_closed(self) -> list[dict[str, Any]]:
        out = [record for batch in self.closed for record in batch]
        self.closed = []
        return out

    def take_open(self) -> list[dict[str, Any]]:
        """The records of an array that was never closed (writer killed mid-file)."""
        out, self.batch = self.batch, []
        return out


_INDEX = re.compile(r"\.(\d+)$")


class TraceFileTailer:
    """Follows `F`, `F.0`, `F.1`, ... for one `trace_file` setting F."""

    def __init__(self, base: str | Path):
        self.base = Path(base)
        self._files: dict[Path, _FileState] = {}
        self.traces_seen = 0

    def files(self) -> list[Path]:
        """The trace files present now, in the order Triton wrote them."""
        found: list[tuple[int, Path]] = []
        folder = self.base.parent
        if not folder.is_dir():
            return []
        prefix = self.base.name
        for path in folder.iterdir():
            if path.name == prefix:
                found.append((1 << 62, path))  # log-frequency 0: written at shutdown
            elif path.name.startswith(prefix + "."):
                match = _INDEX.search(path.name)
                if match and path.name == f"{prefix}.{match.group(1)}":
                    found.append((int(match.group(1)), path))
        return [path for _, path in sorted(found)]

    def poll(self) -> list[Trace]:
        """Traces whose file arrays were closed since the last poll."""
        records: list[tuple[Path, dict[str, Any]]] = []
        for path in self.files():
            state = self._files.get(path)
            if state is None:
                state = self._files[path] = _FileState(path)
            records.extend((path, record) for record in state.read())
        return self._group(records)

    def drain(self) -> list[Trace]:
        """Poll, then also hand out records of arrays never closed (at the end of a run)."""
        out = self.poll()
        leftovers: list[tuple[Path, dict[str, Any]]] = []
        for path, state in self._files.items():
            leftovers.extend((path, record) for record in state.take_open())
        return out + self._group(leftovers)

    def _group(self, records: list[tuple[Path, dict[str, Any]]]) -> list[Trace]:
        by_source: dict[Path, list[dict[str, Any]]] = {}
        for path, record in records:
            by_source.setdefault(path, []).append(record)
        out: list[Trace] = []
        for path, items in by_source.items():
            out.extend(traces_from_records(items, source=str(path)))
        self.traces_seen += len(out)
        return out

    def status(self) -> dict[str, Any]:
        """Per file: bytes read, records, closed arrays, whether an array is still open."""
        return {
            str(path): {
                "offset": state.offset,
                "records": state.records,
                "arrays_closed": state.arrays_closed,
                "open": state.in_array,
                "restarts": state.restarts,
                "error": state.error,
            }
            for path, state in self._files.items()
        }


def merge_by_id(traces: Iterable[Trace]) -> list[Trace]:
    """One Trace per id, pieces of the same id folded together (first-seen order)."""
    merged: dict[int, Trace] = {}
    for trace in traces:
        known = merged.get(trace.id)
        if known is None:
            merged[trace.id] = Trace(
                id=trace.id,
                model_name=trace.model_name,
                model_version=trace.model_version,
                request_id=trace.request_id,
                parent_id=trace.parent_id,
                timestamps={name: list(values) for name, values in trace.timestamps.items()},
                tensors=list(trace.tensors),
                source=trace.source,
            )
        else:
            known.merge(trace)
    return list(merged.values())
