"""Triton-mode trace files: parsing and incremental tailing (fixtures from a real Triton)."""

import json
import random
import shutil
from pathlib import Path

from harness.tracing.trace_files import (
    Trace,
    TraceFileTailer,
    load_trace_file,
    merge_by_id,
    traces_from_records,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tracing"
MIXED = sorted(FIXTURES.glob("mixed_trace.json.*"))


def _copy_mixed(folder: Path) -> Path:
    for path in MIXED:
        shutil.copy(path, folder / path.name.replace("mixed_", ""))
    return folder / "trace.json"


def test_fixture_files_parse_into_ten_traces(tmp_path: Path) -> None:
    tailer = TraceFileTailer(_copy_mixed(tmp_path))
    traces = tailer.poll()
    assert [t.id for t in traces] == list(range(1, 11))
    assert {t.model_name for t in traces} == {"identity"}
    assert {t.model_version for t in traces} == {1}
    assert [t.protocol for t in traces] == ["http"] * 6 + ["grpc"] * 4
    first = traces[0]
    for name in ("HTTP_RECV_START", "REQUEST_START", "QUEUE_START", "COMPUTE_START",
                 "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END", "REQUEST_END",
                 "INFER_RESPONSE_COMPLETE", "HTTP_SEND_START", "HTTP_SEND_END"):
        assert first.first(name) is not None, name
    grpc = traces[-1]
    assert grpc.first("GRPC_WAITREAD_END") is not None and grpc.first("HTTP_RECV_START") is None
    # nothing new on a second poll
    assert tailer.poll() == []
    status = tailer.status()
    assert len(status) == 3
    assert all(not s["open"] and s["arrays_closed"] == 1 and s["error"] is None
               for s in status.values())


def test_events_are_time_ordered_although_records_are_not() -> None:
    traces = load_trace_file(MIXED[0])
    trace = traces[0]
    names = [name for name, _ in trace.events()]
    assert names[0] == "HTTP_RECV_START"
    assert names.index("QUEUE_START") < names.index("COMPUTE_START") < names.index("COMPUTE_END")
    stamps = [ns for _, ns in trace.events()]
    assert stamps == sorted(stamps)


def test_files_sorted_numerically_and_picked_up_when_they_appear(tmp_path: Path) -> None:
    base = tmp_path / "t.json"
    tailer = TraceFileTailer(base)
    assert tailer.poll() == []
    records = json.loads(MIXED[0].read_text())
    for index in (0, 2, 10):
        shifted = [{**r, "id": r["id"] + 100 * index} for r in records]
        (tmp_path / f"t.json.{index}").write_text(json.dumps(shifted))
    (tmp_path / "t.json.bak").write_text("not a trace file")
    (tmp_path / "other.json.1").write_text("[]")
    assert [p.name for p in tailer.files()] == ["t.json.0", "t.json.2", "t.json.10"]
    ids = [t.id for t in tailer.poll()]
    assert ids == [1, 2, 3, 4, 201, 202, 203, 204, 1001, 1002, 1003, 1004]


def test_file_written_in_random_chunks_is_read_incrementally(tmp_path: Path) -> None:
    rng = random.Random(7)
    raw = b"".join(path.read_bytes() for path in MIXED[:1])
    # a multi-byte character in a request id, so chunk edges can split it
    records = json.loads(raw)
    records.insert(0, {"id": 1, "model_name": "identity", "model_version": 1,
                       "request_id": "r\u00e9q\u2603"})
    raw = json.dumps(records, ensure_ascii=False, indent=1).encode("utf-8")
    target = tmp_path / "trace.json.0"
    tailer = TraceFileTailer(tmp_path / "trace.json")
    got: list[Trace] = []
    written = 0
    with target.open("wb") as handle:
        while written < len(raw):
            step = rng.randint(1, 97)
            handle.write(raw[written:written + step])
            handle.flush()
            written += step
            got.extend(tailer.poll())
            state = tailer.status()[str(target)]
            if written < len(raw):
                assert got == []  # the array is not closed yet
                assert state["offset"] <= written
    assert [t.id for t in got] == [1, 2, 3, 4]
    assert got[0].request_id == "r\u00e9q\u2603"
    assert tailer.status()[str(target)]["offset"] == len(raw)
    expected = traces_from_records(json.loads(raw))
    assert [t.timestamps for t in got] == [t.timestamps for t in expected]


def test_drain_hands_out_an_unclosed_array(tmp_path: Path) -> None:
    raw = MIXED[0].read_text()
    cut = raw.index('{"id":3')
    (tmp_path / "trace.json.0").write_text(raw[:cut] + '{"id":3,"timest')
    tailer = TraceFileTailer(tmp_path / "trace.json")
    assert tailer.poll() == []
    leftovers = tailer.drain()
    assert [t.id for t in leftovers] == [1, 2]
    assert leftovers[0].first("REQUEST_END") is not None


def test_several_arrays_in_one_file_and_a_rewritten_file(tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text('[{"id":1,"model_name":"m","model_version":1}]\n')
    tailer = TraceFileTailer(path)
    assert [t.id for t in tailer.poll()] == [1]
    with path.open("a") as handle:
        handle.write('[{"id":2,"model_name":"m","model_version":1},\n')
    assert tailer.poll() == []
    with path.open("a") as handle:
        handle.write('{"id":2,"timestamps":[{"name":"REQUEST_START","ns":5}]}]')
    (two,) = tailer.poll()
    assert two.id == 2 and two.first("REQUEST_START") == 5
    path.write_text('[{"id":9}]')  # shorter: rewritten from scratch
    assert [t.id for t in tailer.poll()] == [9]
    assert tailer.status()[str(path)]["restarts"] == 1


def test_garbage_file_is_reported_and_skipped(tmp_path: Path) -> None:
    (tmp_path / "trace.json.0").write_text("Signal (11) received.\n")
    shutil.copy(MIXED[1], tmp_path / "trace.json.1")
    tailer = TraceFileTailer(tmp_path / "trace.json")
    assert [t.id for t in tailer.poll()] == [5, 6, 7, 8]
    assert "expected '['" in (tailer.status()[str(tmp_path / "trace.json.0")]["error"] or "")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "trace.json.0").write_text("")
    tailer = TraceFileTailer(tmp_path / "trace.json")
    assert tailer.poll() == []
    (tmp_path / "trace.json.0").write_text("[]")
    assert tailer.poll() == []
    assert TraceFileTailer(tmp_path / "nowhere" / "trace.json").poll() == []


def test_tensor_records() -> None:
    traces = load_trace_file(FIXTURES / "tensors_trace.json.0")
    assert len(traces) == 2
    tensors = traces[0].tensors
    assert [(t.activity, t.name, t.data, t.shape, t.dtype) for t in tensors] == [
        ("TENSOR_QUEUE_INPUT", "INPUT0", "0,1,2,3", "1,4", "FP32"),
        ("TENSOR_BACKEND_OUTPUT", "OUTPUT0", "0,1,2,3", "1,4", "FP32"),
    ]
    assert traces[0].first("COMPUTE_END") is not None


def test_merge_by_id_joins_pieces() -> None:
    a = traces_from_records([{"id": 4, "model_name": "m", "model_version": 2},
                             {"id": 4, "timestamps": [{"name": "REQUEST_START", "ns": 1}]}])
    b = traces_from_records([{"id": 4, "timestamps": [{"name": "REQUEST_END", "ns": 9}]},
                             {"id": 5, "parent_id": 4, "model_name": "child"}])
    merged = merge_by_id(a + b)
    assert [t.id for t in merged] == [4, 5]
    assert merged[0].first("REQUEST_START") == 1 and merged[0].last("REQUEST_END") == 9
    assert merged[0].model_version == 2
    assert merged[1].parent_id == 4 and merged[1].protocol == "internal"
    assert a[0].first("REQUEST_END") is None  # inputs untouched
