"""The OTLP receiver in its own process, and the OTLP/JSON decoder that skips protobuf's JSON parser."""

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.tracing.otlp_receiver import decode_export, spans_of, spans_of_json
from harness.tracing.receiver_process import ReceiverError, ReceiverProcess

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tracing"
JSON_BODY = (FIXTURES / "otlp_export_0.json").read_bytes()


def snake_case_with_base64_ids(node: Any) -> Any:
    """The same export as protobuf's own field names and base64 ids: ParseDict reads both."""
    names = {"resourceSpans": "resource_spans", "scopeSpans": "scope_spans", "traceId": "trace_id",
             "spanId": "span_id", "parentSpanId": "parent_span_id",
             "startTimeUnixNano": "start_time_unix_nano", "endTimeUnixNano": "end_time_unix_nano",
             "timeUnixNano": "time_unix_nano", "intValue": "int_value", "stringValue": "string_value"}
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and value:
                value = base64.b64encode(bytes.fromhex(value)).decode()
            out[names.get(key, key)] = snake_case_with_base64_ids(value)
        return out
    if isinstance(node, list):
        return [snake_case_with_base64_ids(item) for item in node]
    return node


def test_the_json_decoder_gives_the_protobuf_paths_records() -> None:
    fast = spans_of_json(JSON_BODY)
    assert fast == spans_of(decode_export(JSON_BODY, "application/json"))
    assert len(fast) == 12 and {s.kind for s in fast} == {"request", "model", "compute"}
    other = json.dumps(snake_case_with_base64_ids(json.loads(JSON_BODY))).encode()
    assert spans_of_json(other) == fast


def test_every_attribute_type_decodes_as_protobuf_does() -> None:
    values = [{"stringValue": "s"}, {"intValue": "-7"}, {"boolValue": True}, {"doubleValue": 1.5},
              {"bytesValue": base64.b64encode(b"\x00\x01").decode()},
              {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "x"}]}},
              {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": False}}]}}, {}]
    span = {"traceId": "0" * 31 + "1", "spanId": "0" * 15 + "2", "name": "n", "startTimeUnixNano": "5",
            "endTimeUnixNano": 6, "events": [{"name": "E", "timeUnixNano": "5"}],
            "attributes": [{"key": f"a{i}", "value": v} for i, v in enumerate(values)]}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()
    (fast,) = spans_of_json(body)
    assert [fast] == spans_of(decode_export(body, "application/json"))
    assert fast.attributes["a1"] == -7 and fast.attributes["a4"] == b"\x00\x01"
    assert fast.attributes["a7"] is None


def one_span(span: str) -> bytes:
    return b'{"resourceSpans": [{"scopeSpans": [{"spans": [%s]}]}]}' % span.encode()


@pytest.mark.parametrize("body", [b"{", b"[]", one_span('{"traceId": 5}'),
                                  one_span('{"startTimeUnixNano": "x"}'), b"\xff"])
def test_malformed_json_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        spans_of_json(body)


@pytest.fixture()
def receiver() -> Iterator[ReceiverProcess]:
    rx = ReceiverProcess(keep_spans=100)
    rx.start()
    try:
        yield rx
    finally:
        rx.close()


def post(port: int, body: bytes, content_type: str = "application/json") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/v1/traces", body, {"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_the_child_counts_every_span_and_hands_them_back(receiver: ReceiverProcess) -> None:
    assert post(receiver.port, JSON_BODY) == 200
    assert post(receiver.port, decode_export(JSON_BODY, "application/json").SerializeToString(),
                "application/x-protobuf") == 200
    assert post(receiver.port, b"{not json") == 400
    snap = receiver.snapshot()
    assert snap["exports"] == 3 and snap["exports_ok"] == 2 and snap["decode_errors"] == 1
    assert snap["spans"] == 24
    assert snap["spans_by_kind"] == {"request": 8, "model": 8, "compute": 8, "other": 0}
    assert snap["model_spans_by_model"] == {"identity": 8}
    assert receiver.spans() == spans_of_json(JSON_BODY) * 2
    assert receiver.url == f"127.0.0.1:{receiver.port}/v1/traces"
    receiver.reset()
    assert receiver.snapshot()["spans"] == 0 and receiver.spans() == []


def test_modes_and_stop_start_go_through_the_pipe(receiver: ReceiverProcess) -> None:
    receiver.set_error(500)
    assert receiver.mode == "error"
    assert post(receiver.port, JSON_BODY) == 500
    assert receiver.snapshot()["spans_rejected"] == 12
    receiver.set_healthy()
    port = receiver.port
    receiver.stop()
    assert not receiver.running
    with pytest.raises(ConnectionRefusedError):
        post(port, JSON_BODY)
    assert receiver.start() == port and receiver.running
    assert post(port, JSON_BODY) == 200
    assert receiver.wait_for(lambda s: s["spans"] == 12, 5)
    with pytest.raises(ValueError):
        receiver.set_slow(-1)


def test_close_ends_the_child_and_so_does_a_closed_pipe() -> None:
    rx = ReceiverProcess()
    rx.start()
    proc = rx._proc
    assert proc is not None
    rx.close()
    assert proc.returncode == 0
    with pytest.raises(ReceiverError):
        rx.snapshot()
    orphan = ReceiverProcess()
    orphan.start()
    child = orphan._proc
    assert child is not None and child.stdin is not None
    child.stdin.close()  # what the harness's death does to the pipe
    assert child.wait(10) == 0
    assert child.stdout is not None
    child.stdout.close()


def test_the_observer_survives_a_dead_receiver_process() -> None:
    from harness.tracing.observer import TraceObserver

    rx = ReceiverProcess()
    rx.start()
    assert rx._proc is not None
    rx._proc.kill()  # our own child, by its handle
    rx._proc.wait()
    summary = TraceObserver(None, rx).stop()
    assert "collector" not in summary and "exited" in summary["collector_error"]
    rx.close()
