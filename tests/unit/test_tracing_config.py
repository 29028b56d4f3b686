"""Trace settings -> `--trace-config` arguments, and the invalid combinations."""

import json
from pathlib import Path
from typing import Any

import pytest

from harness.tracing.config import parse_trace_config, trace_config_args

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tracing"


def _pairs(args: list[str]) -> list[str]:
    assert args[0::2] == ["--trace-config"] * (len(args) // 2)
    return args[1::2]


def test_triton_mode_arguments() -> None:
    args = trace_config_args({"level": "timestamps", "rate": 1, "file": "/tmp/t.json",
                              "log_frequency": 50, "count": 100})
    assert _pairs(args) == [
        "mode=triton",
        "level=TIMESTAMPS",
        "rate=1",
        "count=100",
        "triton,file=/tmp/t.json",
        "triton,log-frequency=50",
    ]


def test_levels_repeat_and_deduplicate() -> None:
    args = trace_config_args({"level": ["TIMESTAMPS", "TENSORS", "timestamps"], "file": "f"})
    assert _pairs(args)[1:3] == ["level=TIMESTAMPS", "level=TENSORS"]


def test_opentelemetry_mode_arguments() -> None:
    args = trace_config_args({
        "mode": "opentelemetry",
        "level": "TIMESTAMPS",
        "rate": "10",
        "url": "127.0.0.1:4318/v1/traces",
        "resource": {"service.name": "triton", "service.version": "1"},
        "bsp_max_queue_size": 4096,
        "bsp_schedule_delay": 200,
        "bsp_max_export_batch_size": 256,
    })
    assert _pairs(args) == [
        "mode=opentelemetry",
        "level=TIMESTAMPS",
        "rate=10",
        "opentelemetry,url=127.0.0.1:4318/v1/traces",
        "opentelemetry,resource=service.name=triton",
        "opentelemetry,resource=service.version=1",
        "opentelemetry,bsp_max_queue_size=4096",
        "opentelemetry,bsp_schedule_delay=200",
        "opentelemetry,bsp_max_export_batch_size=256",
    ]
    listed = trace_config_args({"mode": "opentelemetry", "level": "TIMESTAMPS",
                                "url": "http://localhost:9/v1/traces", "resource": "a=b=c"})
    assert "opentelemetry,resource=a=b=c" in _pairs(listed)


def test_expected_settings_match_what_a_real_triton_reported() -> None:
    triton_seen = json.loads((FIXTURES / "setting_triton.json").read_text())
    config = parse_trace_config({"level": "TIMESTAMPS", "rate": 1,
                                 "file": triton_seen["trace_file"], "log_frequency": 4})
    expected = config.expected_settings()
    assert {k: triton_seen[k] for k in expected} == expected

    otel_seen = json.loads((FIXTURES / "setting_opentelemetry.json").read_text())
    config = parse_trace_config({"mode": "opentelemetry", "level": "TIMESTAMPS", "rate": 1,
                                 "url": otel_seen["url"], "bsp_schedule_delay": 300})
    expected = config.expected_settings()
    assert {k: otel_seen[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1:1/v1/traces",
          "bsp_max_queue_size": 100, "bsp_max_export_batch_size": 200},
         r"bsp_max_export_batch_size \(200\) must not exceed bsp_max_queue_size \(100\)"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1:1/v1/traces",
          "bsp_max_queue_size": 256},
         r"\(512\) must not exceed bsp_max_queue_size \(256\) \(default 512\)"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1:1/v1/traces",
          "bsp_max_export_batch_size": 4096},
         r"\(4096\) must not exceed bsp_max_queue_size \(2048\) \(default 2048\)"),
        ({"level": "TIMESTAMPS"}, "trace mode triton needs `file`"),
        ({"level": "TIMESTAMPS", "file": "  "}, "trace mode triton needs `file`"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS"}, "needs `url`"),
        ({"mode": "opentelemetry", "level": "TENSORS", "url": "127.0.0.1:1/v1/traces"},
         "TENSORS is not supported in opentelemetry mode"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1:1/x",
          "file": "/tmp/t"}, "file belong to triton mode"),
        ({"level": "TIMESTAMPS", "file": "f", "url": "127.0.0.1:1/x"},
         "url belong to opentelemetry mode"),
        ({"level": "TIMESTAMPS", "file": "f", "bsp_max_queue_size": 10},
         "bsp_max_queue_size belong to opentelemetry mode"),
        ({"file": "f"}, "`level` is required"),
        ({"level": ["OFF", "TIMESTAMPS"], "file": "f"}, "OFF cannot be combined"),
        ({"level": "VERBOSE", "file": "f"}, "trace level must be one of"),
        ({"level": [], "file": "f"}, "non-empty list"),
        ({"mode": "jaeger", "level": "TIMESTAMPS"}, "trace mode must be one of"),
        ({"level": "TIMESTAMPS", "file": "f", "rate": 0}, "rate must be >= 1"),
        ({"level": "TIMESTAMPS", "file": "f", "rate": True}, "rate must be an integer"),
        ({"level": "TIMESTAMPS", "file": "f", "rate": 1.5}, "rate must be an integer"),
        ({"level": "TIMESTAMPS", "file": "f", "rate": "often"}, "rate must be an integer"),
        ({"level": "TIMESTAMPS", "file": "f", "count": 0}, "count 0 collects no trace"),
        ({"level": "TIMESTAMPS", "file": "f", "count": -2}, "count must be >= -1"),
        ({"level": "TIMESTAMPS", "file": "f", "log_frequency": -1}, "log_frequency must be >= 0"),
        ({"level": "TIMESTAMPS", "file": "f", "log-frequency": 5},
         "did you mean 'log_frequency'"),
        ({"level": "TIMESTAMPS", "file": "f", "sampling": 5}, "unknown trace setting"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "10.1.2.3:4318/v1/traces"},
         "not a loopback address"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1/v1/traces"},
         "needs an explicit port"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1:99999/v1/traces"},
         "invalid port"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "grpc://127.0.0.1:4317"},
         "must be http"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1:1/x",
          "resource": "service.name"}, "must be 'key=value'"),
        ({"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "127.0.0.1:1/x",
          "bsp_schedule_delay": 0}, "bsp_schedule_delay must be >= 1"),
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trace_config_args(settings)


def test_non_loopback_url_allowed_when_asked() -> None:
    args = trace_config_args(
        {"mode": "opentelemetry", "level": "TIMESTAMPS", "url": "collector:4318/v1/traces"},
        loopback_only=False,
    )
    assert "opentelemetry,url=collector:4318/v1/traces" in args


def test_rate_zero_allowed_in_opentelemetry_mode() -> None:
    # rate 0: only requests that carry a propagated OpenTelemetry context are traced
    args = trace_config_args({"mode": "opentelemetry", "level": "TIMESTAMPS", "rate": 0,
                              "url": "127.0.0.1:4318/v1/traces"})
    assert "rate=0" in args
