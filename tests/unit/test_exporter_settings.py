"""The exporter's settings: flags over `HARNESS_METRICS_*` variables, one line for a bad value."""

import pytest

from harness.errors import UsageError
from harness.exitcodes import ExitCode
from harness.exporter.settings import LINGER_ENV, PORT_ENV, PUSHGATEWAY_ENV, SERVICE_KEY, settings_from


def test_off_unless_a_port_or_a_pushgateway_is_given() -> None:
    assert not settings_from({}, {}).enabled
    assert not settings_from({}, {PORT_ENV: "  "}).enabled  # empty means unset, as for every HARNESS_*
    assert settings_from({}, {PORT_ENV: "0"}).port == 0
    only_push = settings_from({}, {PUSHGATEWAY_ENV: "127.0.0.1:9091"})
    assert only_push.enabled and only_push.port is None and only_push.pushgateway == "http://127.0.0.1:9091"


def test_a_flag_wins_over_its_variable() -> None:
    services = {SERVICE_KEY: {"port": 9464, "pushgateway": None, "linger": 2.5}}
    environ = {PORT_ENV: "1234", PUSHGATEWAY_ENV: "http://localhost:9091/", LINGER_ENV: "9"}
    got = settings_from(services, environ)
    assert (got.port, got.pushgateway, got.linger_s) == (9464, "http://localhost:9091", 2.5)


@pytest.mark.parametrize(("environ", "message"), [
    ({PORT_ENV: "http"}, "HARNESS_METRICS_PORT='http': expected a port number 0-65535 (0: a free one)"),
    ({PORT_ENV: "70000"}, "HARNESS_METRICS_PORT='70000': expected a port number"),
    ({PUSHGATEWAY_ENV: "ftp://127.0.0.1:9091"}, "expected http://HOST:PORT"),
    ({PUSHGATEWAY_ENV: "http://10.1.2.3:9091"}, "10.1.2.3 is not a loopback address"),
    ({PUSHGATEWAY_ENV: "http://127.0.0.1"}, "needs an explicit port"),
    ({PUSHGATEWAY_ENV: "http://127.0.0.1:x"}, "the port is not a number"),
    ({PORT_ENV: "0", LINGER_ENV: "-1"}, "HARNESS_METRICS_LINGER='-1': expected seconds, 0 to 600"),
    ({PORT_ENV: "0", LINGER_ENV: "nan"}, "expected seconds"),
])
def test_a_bad_value_is_one_line_naming_its_source(environ: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        settings_from({}, environ)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert info.value.code == ExitCode.USAGE_ERROR


def test_a_bad_flag_is_named_as_the_flag() -> None:
    with pytest.raises(UsageError, match=r"^--metrics-port='-3': "):
        settings_from({SERVICE_KEY: {"port": -3}}, {})
