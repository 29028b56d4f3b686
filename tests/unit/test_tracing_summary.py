"""Per-model breakdown and per-trace timeline of Triton traces."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from harness.tracing.otlp_receiver import decode_export, spans_of, spans_to_traces
from harness.tracing.summary import (
    SummaryBuilder,
    components,
    format_summary,
    format_timeline,
    percentile,
    sent_before_release,
    summarize,
    timeline,
)
from harness.tracing.trace_files import Trace, TraceFileTailer, traces_from_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tracing"


def _trace(stamps: dict[str, int], trace_id: int = 1, model: str = "m") -> Trace:
    records = [{"id": trace_id, "model_name": model, "model_version": 1}]
    records += [{"id": trace_id, "timestamps": [{"name": k, "ns": v}]} for k, v in stamps.items()]
    (trace,) = traces_from_records(records)
    return trace


HTTP_STAMPS = {
    "HTTP_RECV_START": 1_000,
    "HTTP_RECV_END": 3_000,
    "REQUEST_START": 4_000,
    "QUEUE_START": 5_000,
    "COMPUTE_START": 8_000,
    "COMPUTE_INPUT_END": 9_000,
    "COMPUTE_OUTPUT_START": 19_000,
    "INFER_RESPONSE_COMPLETE": 20_000,
    "COMPUTE_END": 21_000,
    "REQUEST_END": 22_000,
    "HTTP_SEND_START": 23_000,
    "HTTP_SEND_END": 26_000,
}


def test_components_of_an_http_trace() -> None:
    parts = components(_trace(HTTP_STAMPS))
    assert parts == {
        "request": 25.0,
        "receive": 2.0,
        "send": 3.0,
        "handler": 18.0,
        "overhead": 2.0,  # 25 - 2 - 3 - 18
        "queue": 3.0,
        "compute": 13.0,
        "compute_input": 1.0,
        "compute_infer": 10.0,
        "compute_output": 2.0,
        "handler_overhead": 2.0,  # 18 - 3 - 13
        "response": 16.0,
    }


def test_components_of_a_grpc_trace_have_no_receive() -> None:
    stamps = {k: v for k, v in HTTP_STAMPS.items() if not k.startswith("HTTP")}
    stamps.update(GRPC_WAITREAD_START=0, GRPC_WAITREAD_END=2_000, GRPC_SEND_START=23_000,
                  GRPC_SEND_END=25_000)
    trace = _trace(stamps)
    assert trace.protocol == "grpc"
    parts = components(trace)
    assert "receive" not in parts
    assert parts["request"] == 23.0  # from the end of the wait-read, not its start
    assert parts["send"] == 2.0
    assert parts["overhead"] == 23.0 - 2.0 - 18.0


def test_missing_timestamps_leave_components_out() -> None:
    trace = _trace({"REQUEST_START": 0, "QUEUE_START": 1_000, "REQUEST_END": 9_000})
    assert trace.protocol == "internal"
    assert components(trace) == {"handler": 9.0}


def test_sent_before_release() -> None:
    late = dict(HTTP_STAMPS, REQUEST_END=30_000)
    assert sent_before_release(_trace(late))
    assert sent_before_release(_trace(dict(HTTP_STAMPS, REQUEST_END=23_500)))
    assert not sent_before_release(_trace(HTTP_STAMPS))
    assert components(_trace(late))["overhead"] < 0


def test_percentile_matches_numpy() -> None:
    rng = random.Random(3)
    for size in (1, 2, 5, 100, 1001):
        values = sorted(rng.uniform(0, 1000) for _ in range(size))
        for q in (0, 50, 90, 99, 100):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))


def test_summary_of_real_traces_separates_http_and_grpc(tmp_path: Path) -> None:
    traces = TraceFileTailer(FIXTURES / "mixed_trace.json").poll()
    summaries = summarize(traces)
    assert [(s.model, s.version, s.protocol, s.trace_count) for s in summaries] == [
        ("identity", 1, "grpc", 4),
        ("identity", 1, "http", 6),
    ]
    grpc, http = summaries
    assert "receive" not in grpc.stats and http.stats["receive"].count == 6
    for summary in summaries:
        for key in ("request", "send", "handler", "queue", "compute", "compute_input",
                    "compute_infer", "compute_output", "response"):
            stat = summary.stats[key]
            assert stat.count == summary.trace_count
            assert 0 <= stat.min <= stat.p50 <= stat.p90 <= stat.p99 <= stat.max < 1e6, key
        assert summary.stats["compute"].avg == pytest.approx(
            summary.stats["compute_input"].avg + summary.stats["compute_infer"].avg
            + summary.stats["compute_output"].avg)
    data = http.as_dict()
    assert data["trace_count"] == 6 and set(data["us"]["compute"]) == {
        "count", "avg", "p50", "p90", "p99", "min", "max"}
    json.dumps(data)  # plain data

    text = format_summary(summaries)
    assert "Summary for identity (1): trace count = 6" in text
    assert "HTTP infer request: avg" in text and "GRPC infer request: avg" in text
    grpc_part, http_part = text.split("Summary for identity (1): trace count = 6")
    assert "Receive" not in grpc_part and "\tReceive: avg" in http_part
    assert "\t\t\tInfer: avg" in http_part and "p99" in http_part


def test_builder_accumulates_incrementally() -> None:
    builder = SummaryBuilder()
    builder.add(_trace(HTTP_STAMPS, 1))
    builder.add(_trace({k: v * 2 for k, v in HTTP_STAMPS.items()}, 2))
    builder.add(_trace(HTTP_STAMPS, 3, model="other"))
    (m, other) = builder.result()
    assert (m.model, m.trace_count, other.model, other.trace_count) == ("m", 2, "other", 1)
    assert m.stats["compute"].avg == pytest.approx((13.0 + 26.0) / 2)
    assert m.stats["compute"].p50 == pytest.approx(19.5)


def test_timeline_of_one_trace() -> None:
    trace = _trace(HTTP_STAMPS)
    steps = timeline(trace)
    assert [s.name for s in steps][:3] == ["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START"]
    assert steps[0].since_prev_us == 0 and steps[-1].since_start_us == 25.0
    assert sum(s.since_prev_us for s in steps) == pytest.approx(25.0)
    text = format_timeline(trace)
    lines = text.splitlines()
    assert lines[0] == "m (1) id=1 [http]:"
    assert lines[1:4] == ["\thttp recv start", "\t\t2us", "\thttp recv end"]
    assert lines[-1] == "\thttp send end"


def test_spans_from_opentelemetry_summarise_like_files() -> None:
    body = (FIXTURES / "otlp_export_0.json").read_bytes()
    traces = spans_to_traces(spans_of(decode_export(body, "application/json")))
    assert sorted(t.protocol for t in traces) == ["grpc", "http", "http", "http"]
    summaries = summarize(traces)
    assert [(s.protocol, s.trace_count) for s in summaries] == [("grpc", 1), ("http", 3)]
    http = summaries[1]
    assert http.stats["compute"].min > 0 and http.stats["request"].min > 0
