"""The OTLP/HTTP receiver, fed with an export body captured from a real Triton."""

import gzip
import http.client
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from harness.tracing.otlp_receiver import OtlpReceiver, classify_span, decode_export, spans_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tracing"
JSON_BODY = (FIXTURES / "otlp_export_0.json").read_bytes()
PROTO_BODY = decode_export(JSON_BODY, "application/json").SerializeToString()
KINDS = {"request": 4, "model": 4, "compute": 4, "other": 0}


@pytest.fixture()
def receiver() -> Iterator[OtlpReceiver]:
    rx = OtlpReceiver(keep_spans=100)
    rx.start()
    try:
        yield rx
    finally:
        rx.stop()


def post(
    port: int,
    body: bytes,
    content_type: str = "application/json",
    path: str = "/v1/traces",
    headers: dict[str, str] | None = None,
    conn: http.client.HTTPConnection | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes, str]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": content_type, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Content-Type") or ""
    finally:
        if own:
            conn.close()


def test_decode_real_json_export_with_hex_ids() -> None:
    raw = json.loads(JSON_BODY)
    spans = spans_of(decode_export(JSON_BODY, "application/json"))
    first = raw["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert spans[0].trace_id == first["traceId"] and spans[0].span_id == first["spanId"]
    assert spans[0].parent_span_id == first["parentSpanId"]
    assert [s.name for s in spans[:3]] == ["compute", "identity", "InferRequest"]
    assert [s.kind for s in spans[:3]] == ["compute", "model", "request"]
    model = spans[1]
    assert model.attributes == {"triton.model_name": "identity", "triton.model_version": 1,
                                "triton.trace_id": 1, "triton.trace_parent_id": 0}
    assert [e[0] for e in model.events] == ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
    # the model span is the compute span's parent; the request span is the model span's
    assert spans[0].parent_span_id == model.span_id
    assert model.parent_span_id == spans[2].span_id and spans[2].parent_span_id == ""
    # the protobuf encoding decodes to the same spans
    assert spans_of(decode_export(PROTO_BODY, "application/x-protobuf")) == spans


def test_classify_span() -> None:
    assert classify_span("InferRequest", {}, False) == "request"
    assert classify_span("compute", {}, True) == "compute"
    assert classify_span("ensemble", {"triton.model_name": "ensemble"}, True) == "model"
    assert classify_span("something", {}, True) == "other"


def test_counts_json_and_protobuf_exports(receiver: OtlpReceiver) -> None:
    status, body, ctype = post(receiver.port, JSON_BODY)
    assert (status, body, ctype) == (200, b"{}", "application/json")
    status, body, ctype = post(receiver.port, PROTO_BODY, "application/x-protobuf")
    assert status == 200 and ctype == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(body)
    snap = receiver.snapshot()
    assert snap["exports"] == snap["exports_ok"] == 2
    assert snap["bytes"] == len(JSON_BODY) + len(PROTO_BODY)
    assert snap["spans"] == 24
    assert snap["spans_by_kind"] == {k: 2 * v for k, v in KINDS.items()}
    assert snap["spans_by_name"] == {"compute": 8, "identity": 8, "InferRequest": 8}
    assert snap["model_spans_by_model"] == {"identity": 8}
    assert snap["content_types"] == {"application/json": 1, "application/x-protobuf": 1}
    assert snap["statuses"] == {"200": 2}
    assert len(receiver.spans()) == 24
    assert receiver.url == f"127.0.0.1:{receiver.port}/v1/traces"


def test_gzip_bad_body_and_wrong_path(receiver: OtlpReceiver) -> None:
    assert post(receiver.port, gzip.compress(JSON_BODY),
                headers={"Content-Encoding": "gzip"})[0] == 200
    assert post(receiver.port, b"\xff\x00garbage", "application/x-protobuf")[0] == 400
    assert post(receiver.port, b"{not json")[0] == 400
    assert post(receiver.port, JSON_BODY, path="/v1/metrics")[0] == 404
    snap = receiver.snapshot()
    assert snap["spans"] == 12 and snap["decode_errors"] == 2 and snap["other_requests"] == 1
    assert snap["last_error"]


def test_error_mode_answers_the_status_and_counts_rejected(receiver: OtlpReceiver) -> None:
    receiver.set_error(503)
    status, body, _ = post(receiver.port, JSON_BODY)
    assert status == 503 and b"injected" in body
    snap = receiver.snapshot()
    assert (snap["mode"], snap["error_status"]) == ("error", 503)
    assert snap["exports_rejected"] == 1 and snap["spans_rejected"] == 12 and snap["spans"] == 0
    receiver.set_mode("healthy")
    assert post(receiver.port, JSON_BODY)[0] == 200
    assert receiver.snapshot()["statuses"] == {"503": 1, "200": 1}
    with pytest.raises(ValueError):
        receiver.set_error(200)
    with pytest.raises(ValueError):
        receiver.set_mode("flaky")


def test_slow_mode_delays_each_export_without_blocking_others(receiver: OtlpReceiver) -> None:
    receiver.set_slow(0.4)
    results: list[float] = []

    def one() -> None:
        started = time.monotonic()
        assert post(receiver.port, JSON_BODY)[0] == 200
        results.append(time.monotonic() - started)

    started = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(5)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    snap_started = time.monotonic()
    snap = receiver.snapshot()  # not blocked by the sleeping handlers
    assert time.monotonic() - snap_started < 0.3
    assert snap["exports_delayed"] >= 1 and snap["mode"] == "slow" and snap["delay_s"] == 0.4
    for thread in threads:
        thread.join()
    assert len(results) == 5 and min(results) >= 0.39
    assert time.monotonic() - started < 1.9  # handled concurrently (one by one: 2.0 s)
    assert receiver.snapshot()["spans"] == 60


def test_stop_cuts_connections_and_start_listens_on_the_same_port() -> None:
    receiver = OtlpReceiver()
    port = receiver.start()
    keep_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        assert post(port, JSON_BODY, conn=keep_alive)[0] == 200
        receiver.stop()
        assert not receiver.running
        with pytest.raises((OSError, http.client.HTTPException)):
            post(port, JSON_BODY, conn=keep_alive)  # the open connection was cut
        with pytest.raises(ConnectionRefusedError):
            post(port, JSON_BODY)
        assert receiver.start() == port
        assert post(port, JSON_BODY)[0] == 200
        snap = receiver.snapshot()
        assert (snap["starts"], snap["stops"], snap["exports_ok"], snap["spans"]) == (2, 1, 2, 24)
        receiver.reset()
        assert receiver.snapshot()["spans"] == 0 and receiver.snapshot()["starts"] == 2
    finally:
        keep_alive.close()
        receiver.stop()


def test_stop_ends_a_slow_export_at_once() -> None:
    receiver = OtlpReceiver()
    port = receiver.start()
    receiver.set_slow(30)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            post(port, JSON_BODY, timeout=10)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    thread = threading.Thread(target=one)
    thread.start()
    assert receiver.wait_for(lambda s: s["exports_delayed"] == 1, 2)
    started = time.monotonic()
    receiver.stop()
    thread.join(5)
    assert time.monotonic() - started < 2 and not thread.is_alive()
    assert len(errors) == 1  # the client saw the collector go away
    assert receiver.snapshot()["exports_ok"] == 0


def test_counters_are_thread_safe(receiver: OtlpReceiver) -> None:
    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
        for _ in range(15):
            assert post(receiver.port, JSON_BODY, conn=conn)[0] == 200
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snap = receiver.snapshot()
    assert snap["exports"] == snap["exports_ok"] == 120
    assert snap["spans"] == 120 * 12 and snap["connections"] == 8
    assert snap["spans_by_kind"] == {k: 120 * v for k, v in KINDS.items()}


def test_listener_is_called_and_its_failure_is_contained(receiver: OtlpReceiver) -> None:
    seen: list[int] = []
    receiver.add_listener(lambda spans: seen.append(len(spans)))
    receiver.add_listener(lambda spans: 1 / 0)  # type: ignore[func-returns-value]
    assert post(receiver.port, JSON_BODY)[0] == 200
    assert seen == [12]
    assert "ZeroDivisionError" in (receiver.snapshot()["last_error"] or "")


GEVENT_SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import http.client, sys, time
import gevent
from harness.tracing.otlp_receiver import OtlpReceiver

body = open(sys.argv[1], "rb").read()

def post(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/v1/traces", body, {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status

rx = OtlpReceiver()
port = rx.start()
rx.set_slow(0.3)
ticks = []
def ticker():
    for _ in range(10):
        ticks.append(time.monotonic())
        gevent.sleep(0.02)
started = time.monotonic()
jobs = [gevent.spawn(post, port) for _ in range(20)] + [gevent.spawn(ticker)]
gevent.joinall(jobs, timeout=10)
elapsed = time.monotonic() - started
assert [j.value for j in jobs[:20]] == [200] * 20, [j.value for j in jobs]
assert elapsed < 1.5, elapsed          # 20 slow exports overlapped
assert len(ticks) == 10 and ticks[-1] - ticks[0] < 0.5  # the loop kept running meanwhile
rx.set_healthy()
rx.stop()
try:
    post(port)
    raise SystemExit("still listening")
except ConnectionRefusedError:
    pass
assert rx.start() == port and post(port) == 200
snap = rx.snapshot()
rx.stop()
assert snap["spans"] == 21 * 12 and snap["spans_by_kind"]["compute"] == 21 * 4, snap
print("gevent ok", round(elapsed, 3))
"""


def test_works_under_gevent_monkey_patching(tmp_path: Path) -> None:
    pytest.importorskip("gevent")
    script = tmp_path / "gevent_check.py"
    script.write_text(GEVENT_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(FIXTURES / "otlp_export_0.json")],
        capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gevent ok" in result.stdout
