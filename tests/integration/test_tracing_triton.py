"""Tracing against a real `tritonserver` (identity Python-backend model, CPU).

Each test starts its own server; traffic goes to 127.0.0.1 only, over one keep-alive
connection at a time (closed before the server is stopped, so shutdown does not wait for it).
"""

import http.client
import importlib.util
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.tracing.config import parse_trace_config
from harness.tracing.otlp_receiver import OtlpReceiver, spans_to_traces
from harness.tracing.settings import TraceSettingsClient, TraceSettingsError
from harness.tracing.summary import format_summary, format_timeline, summarize
from harness.tracing.trace_files import Trace, TraceFileTailer, merge_by_id
from harness.triton.spec import TritonSpec
from harness.triton.stack import TritonStack

pytestmark = [
    pytest.mark.real,
    pytest.mark.skipif(importlib.util.find_spec("pytriton") is None,
                       reason="nvidia-pytriton (the tritonserver binary) is not installed"),
]

INFER_PATH = "/v2/models/identity/infer"
INFER_BODY = json.dumps(
    {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [0, 1, 2, 3]}]}
)
QUEUE_FULL = "BatchSpanProcessor queue is full"


@contextmanager
def triton(workdir: Path, settings: dict[str, Any]) -> Iterator[TritonStack]:
    config = parse_trace_config(settings)
    stack = TritonStack(TritonSpec(kind="triton"), workdir, extra_args=config.args())
    stack.start()
    try:
        stack.wait_ready(60)
        seen = TraceSettingsClient(_http(stack)).get()
        expected = config.expected_settings()
        assert {key: seen.get(key) for key in expected} == expected
        yield stack
    finally:
        report = stack.stop()
        print(f"stop: {report}")


def _http(stack: TritonStack) -> str:
    assert stack.endpoints.http is not None
    return stack.endpoints.http


def infer(stack: TritonStack, count: int) -> None:
    """`count` HTTP inferences over one keep-alive connection; all must answer 200."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.ports["http"], timeout=10)
    try:
        for _ in range(count):
            conn.request("POST", INFER_PATH, INFER_BODY, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()


def server_log(stack: TritonStack) -> str:
    return stack.log_files()["server"].read_text(errors="replace")


def test_triton_mode_files_are_tailed_and_summarised(tmp_path: Path) -> None:
    trace_file = tmp_path / "traces" / "trace.json"
    trace_file.parent.mkdir()
    settings = {"mode": "triton", "level": "TIMESTAMPS", "rate": 1, "log_frequency": 50,
                "file": str(trace_file)}
    tailer = TraceFileTailer(trace_file)
    traces: list[Trace] = []
    polls_with_traces = 0
    with triton(tmp_path / "work", settings) as stack:
        for _ in range(6):
            infer(stack, 50)
            got = tailer.poll()
            polls_with_traces += bool(got)
            traces.extend(got)
        deadline = time.monotonic() + 5
        while len(traces) < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
            traces.extend(tailer.poll())
    traces.extend(tailer.drain())
    traces = merge_by_id(traces)
    print(tailer.status())
    assert polls_with_traces >= 3  # read while the server was writing, not only at the end
    assert len(traces) == 300 and len({t.id for t in traces}) == 300
    assert len(tailer.files()) == 6  # log-frequency 50: trace.json.0 .. trace.json.5
    (summary,) = summarize(traces)
    print(format_summary([summary]))
    print(format_timeline(traces[-1]))
    assert (summary.model, summary.version, summary.protocol, summary.trace_count) == (
        "identity", 1, "http", 300)
    for key in ("request", "receive", "send", "handler", "queue", "compute", "compute_input",
                "compute_infer", "compute_output", "response"):
        stat = summary.stats[key]
        assert stat.count == 300, key
        assert 0 <= stat.p50 <= stat.p90 <= stat.p99 <= stat.max, key
        assert stat.p50 < 50_000, key  # microseconds: an identity model answers in well under 50 ms
    stats = summary.stats
    assert stats["compute"].avg > 0 and stats["request"].p50 >= stats["compute"].p50
    # per trace: queue and compute lie inside REQUEST_START..REQUEST_END
    assert stats["handler_overhead"].min >= 0


def test_runtime_rate_and_level_change_then_restore(tmp_path: Path) -> None:
    trace_file = tmp_path / "trace.json"
    settings = {"mode": "triton", "level": "TIMESTAMPS", "rate": 1, "log_frequency": 10,
                "file": str(trace_file)}
    with triton(tmp_path / "work", settings) as stack:
        client = TraceSettingsClient(_http(stack))
        original = client.get()
        original_model = client.get("identity")
        infer(stack, 40)
        with client.changed({"rate": 10, "level": ["TIMESTAMPS", "TENSORS"]}) as applied:
            assert applied["trace_rate"] == "10"
            assert applied["trace_level"] == ["TIMESTAMPS", "TENSORS"]
            now = client.get()
            assert (now["trace_rate"], now["trace_level"]) == ("10", ["TIMESTAMPS", "TENSORS"])
            assert client.get("identity")["trace_rate"] == "10"  # the model follows the global
            infer(stack, 200)
        assert client.get() == original

        with client.changed({"rate": 5}, model="identity"):
            assert client.get("identity")["trace_rate"] == "5"
            assert client.get()["trace_rate"] == "1"
        assert client.get("identity") == original_model
        # cleared rather than pinned: the model follows a later global change again
        with client.changed({"rate": 3}):
            assert client.get("identity")["trace_rate"] == "3"
        assert client.get("identity")["trace_rate"] == "1"

        with pytest.raises(TraceSettingsError) as refused:
            client.update({"trace_file": str(tmp_path / "elsewhere.json")})
        assert refused.value.status == 501
        with pytest.raises(TraceSettingsError) as refused:
            client.update({"trace_rate": "often"})
        assert refused.value.status == 400
        infer(stack, 40)
    tailer = TraceFileTailer(trace_file)
    traces = merge_by_id(tailer.drain())
    with_tensors = [t for t in traces if t.tensors]
    print(f"{len(traces)} traces, {len(with_tensors)} with tensors; files {tailer.status()}")
    assert with_tensors, "no TENSORS trace although the level was raised at run time"
    assert {t.tensors[0].activity for t in with_tensors} <= {
        "TENSOR_QUEUE_INPUT", "TENSOR_BACKEND_OUTPUT"}
    # 40 at rate 1, 200 at rate 10, 40 at rate 1 (give or take the sampler's phase)
    assert 90 <= len(traces) <= 110


def test_opentelemetry_spans_arrive_counted_by_kind(tmp_path: Path) -> None:
    receiver = OtlpReceiver(keep_spans=2000)
    receiver.start()
    settings = {"mode": "opentelemetry", "level": "TIMESTAMPS", "rate": 1, "url": receiver.url,
                "bsp_schedule_delay": 200}
    try:
        with triton(tmp_path / "work", settings) as stack:
            infer(stack, 300)
            assert receiver.wait_for(lambda s: s["spans_by_kind"]["request"] >= 300, 10)
            time.sleep(0.5)
            snap = receiver.snapshot()
            print(snap)
            assert snap["spans_by_kind"] == {"request": 300, "model": 300, "compute": 300,
                                             "other": 0}
            assert snap["spans_by_name"] == {"InferRequest": 300, "identity": 300,
                                             "compute": 300}
            assert snap["model_spans_by_model"] == {"identity": 300}
            assert snap["content_types"] == {"application/json": snap["exports"]}
            assert snap["decode_errors"] == 0
            (summary,) = summarize(spans_to_traces(receiver.spans()))
            print(format_summary([summary]))
            assert (summary.protocol, summary.trace_count) == ("http", 300)

            # collector down, then back
            receiver.stop()
            infer(stack, 30)
            time.sleep(0.8)
            receiver.start()
            receiver.reset()
            infer(stack, 30)
            assert receiver.wait_for(lambda s: s["spans_by_kind"]["request"] >= 30, 10)
            # collector failing
            receiver.set_error(500)
            infer(stack, 30)
            assert receiver.wait_for(lambda s: s["exports_rejected"] >= 1, 10)
            receiver.set_healthy()
            assert stack.health().ok
            print(receiver.snapshot())
            live_log = server_log(stack)
        # the exporter's messages are block-buffered: complete only once the server exited
        log = server_log(stack)
        print(f"exporter errors in the log while running: "
              f"{live_log.count('[OTLP HTTP Client]')}, after exit: "
              f"{log.count('[OTLP HTTP Client]')}")
        assert "Couldn't connect to server" in log
        assert "Export failed, Status:500" in log
    finally:
        receiver.stop()


def test_opentelemetry_slow_collector_overflows_the_span_queue(tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    receiver.start()
    receiver.set_slow(1.0)
    settings = {"mode": "opentelemetry", "level": "TIMESTAMPS", "rate": 1, "url": receiver.url,
                "bsp_schedule_delay": 200, "bsp_max_queue_size": 64,
                "bsp_max_export_batch_size": 16}
    try:
        with triton(tmp_path / "work", settings) as stack:
            started = time.monotonic()
            infer(stack, 300)
            took = time.monotonic() - started
            time.sleep(1.5)
            snap = receiver.snapshot()
            dropped_live = server_log(stack).count(QUEUE_FULL)
            assert snap["exports_delayed"] >= 1
            assert stack.health().ok
            receiver.set_healthy()  # let the exporter's shutdown flush finish quickly
        final = receiver.snapshot()
        dropped = server_log(stack).count(QUEUE_FULL)
        print(f"300 inferences in {took:.2f}s; received {snap['spans']} spans in "
              f"{snap['exports']} exports while running, {final['spans']} by the end; "
              f"'{QUEUE_FULL}' lines: {dropped_live} while running, {dropped} after exit")
        assert dropped > 0
        assert final["spans"] + dropped <= 900
    finally:
        receiver.stop()
