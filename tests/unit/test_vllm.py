"""The vLLM feature's own logic: the tiny model, the settings, roles by process title, start
failures explained, and the server-side SLO metrics. The real server: tests/integration/test_vllm.py."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from harness.analysis import RunData
from harness.procs import ManagedProcess, ProcessId
from harness.vllm import model as tiny
from harness.vllm.diagnose import explain_start_failure
from harness.vllm.feature import counter_increase
from harness.vllm.spec import VllmSpec
from harness.vllm.stack import VllmStack


def test_the_tiny_model_is_the_same_bytes_every_time(tmp_path: Path) -> None:
    first = tiny.build(tmp_path / "a")
    second = tiny.build(tmp_path / "b")
    assert tiny.folder_digest(first) == tiny.folder_digest(second)
    other = tiny.build(tmp_path / "c", tiny.TinyLlama(seed=1))
    assert tiny.folder_digest(other) != tiny.folder_digest(first)  # the seed is in the weights


def test_the_tiny_model_matches_its_config_and_never_emits_special_tokens(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    folder = tiny.build(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert config["head_dim"] == 32 and config["model_type"] == "llama"
    weights = load_file(str(folder / tiny.WEIGHTS))
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert config["vocab_size"] == len(vocab) == weights["lm_head.weight"].shape[0]
    assert set(weights) == set(tiny.tensor_shapes(tiny.TinyLlama(), len(vocab)))
    assert not weights["lm_head.weight"][: len(tiny.SPECIAL)].any()  # greedy never picks </s>


def test_a_complete_build_is_reused_and_a_half_built_one_is_rebuilt(tmp_path: Path) -> None:
    folder = tiny.build(tmp_path / "m")
    weights = folder / tiny.WEIGHTS
    before = weights.stat().st_mtime_ns
    tiny.build(folder)
    assert weights.stat().st_mtime_ns == before
    (folder / tiny.STAMP).unlink()  # a build killed before its stamp
    weights.write_bytes(b"half")
    tiny.build(folder)
    assert weights.stat().st_size > 100_000


def test_a_head_dim_vllm_cpu_cannot_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="head_dim 16"):
        tiny.build(tmp_path / "m", tiny.TinyLlama(head_dim=16))


@pytest.mark.parametrize(("field", "value", "message"), [
    ("extra_args", ["--port", "9"], "set by the harness"),
    ("extra_args", ["--host=0.0.0.0"], "set by the harness"),
    ("kv_cache", "1Ki", "greater than or equal"),
    ("model_path", "/nonexistent", "not a model folder"),
    ("served_model_name", "bad name", "should match"),
    ("max_model_len", 0, "greater than or equal"),
])
def test_bad_settings_are_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VllmSpec.model_validate({"kind": "vllm", field: value})


def test_sizes_are_read_with_units() -> None:
    assert VllmSpec.model_validate({"kind": "vllm", "kv_cache": "2Mi"}).kv_cache == 2 * 2**20


def test_start_failures_seen_on_real_machines_are_explained() -> None:
    log = "RuntimeError: operator torchvision::nms does not exist\n"
    assert "pip uninstall -y torchvision" in (explain_start_failure(log) or "")
    assert "head_dim" in (explain_start_failure("Unsupported CPU attention configuration") or "")
    assert explain_start_failure("all is well") is None


def test_roles_are_read_from_the_process_titles_vllm_sets(tmp_path: Path) -> None:
    """A parent with children renamed as vLLM's (bash's `exec -a` sets argv[0], as setproctitle does)."""
    script = ("(exec -a VLLM::EngineCore sleep 30) & (exec -a VLLM::Worker sleep 30) & "
              "(exec -a other-helper sleep 30) & wait")
    env = {"PATH": "/usr/bin:/bin"}
    process = ManagedProcess(["bash", "-c", script], env, tmp_path / "log", cwd=tmp_path)
    try:
        stack = VllmStack(VllmSpec(kind="vllm"), tmp_path)
        stack.process = process
        roles: dict[str, list[ProcessId]] = {}
        for _ in range(50):  # until the children have exec'd
            roles = stack.roles()
            if roles["engine_core"] and roles["worker"]:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert [p.pid for p in roles["api_server"]] == [process.pid]
        assert len(roles["engine_core"]) == 1 and len(roles["worker"]) == 1
    finally:
        result = process.stop(1.0)
    assert len(result.leftovers_killed) == 3  # the children: stop sweeps every descendant


def _scrapes(*values: tuple[float, dict[str, float]]) -> RunData:
    records: list[dict[str, Any]] = [{"type": "event", "event": "load_started", "t": 0.0},
                                     {"type": "event", "event": "load_stopped", "t": 10.0}]
    records += [{"type": "series", "name": "metrics", "t": t, "values": v} for t, v in values]
    return RunData.from_records(records)


def test_counter_increases_add_up_over_restarts() -> None:
    key = "vllm:num_preemptions{engine=0}"
    scrapes = [(1.0, {key: 3.0}), (2.0, {key: 7.0}), (3.0, {key: 2.0}), (4.0, {key: 5.0})]
    assert counter_increase(scrapes[1:], scrapes[0], "vllm:num_preemptions") == 4 + 2 + 3
    assert counter_increase([], None, "vllm:num_preemptions") is None


def test_server_metrics_over_a_window() -> None:
    from harness.analysis import measure
    from harness.scenario import Window

    def sample(waiting: float, preempted: float, ttft_sum: float, ttft_count: float) -> dict[str, float]:
        return {"vllm:num_requests_waiting{engine=0,model_name=m}": waiting,
                "vllm:num_preemptions{engine=0,model_name=m}": preempted,
                "vllm:time_to_first_token_seconds_sum{engine=0,model_name=m}": ttft_sum,
                "vllm:time_to_first_token_seconds_count{engine=0,model_name=m}": ttft_count}

    data = _scrapes((1.0, sample(0, 0, 0.0, 0)), (4.0, sample(5, 2, 1.0, 10)), (8.0, sample(1, 6, 4.0, 20)))
    assert measure(data, "vllm.waiting_max").value == 5
    assert measure(data, "vllm.preemptions").value == 6
    assert measure(data, "vllm.ttft_mean_ms").value == pytest.approx(200.0)  # 4 s over 20 requests
    late = Window.model_validate({"from": 5})
    assert measure(data, "vllm.preemptions", late).value == 4  # from the scrape before the window
    assert measure(data, "vllm.ttft_mean_ms", late).value == pytest.approx(300.0)
    assert measure(_scrapes(), "vllm.waiting_max").value is None  # not scraped: no value, not 0
