"""The openai user class against a real OpenAI-compatible server: Dynamo's frontend and mocker.

The server is started by the test (the harness's own DynamoStack, in this process) and the
harness reaches it as `kind: external`, the way it would reach any OpenAI-compatible endpoint.
Its TTFT and inter-token latency are checked against the frontend's own Prometheus histograms.
"""

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.dynamo.spec import DynamoSpec
from harness.dynamo.stack import REPLAY_KEY, DynamoStack
from harness.exitcodes import ExitCode
from tests.conftest import only_run_dir, run_harness

pytestmark = pytest.mark.real

SPEEDUP = 2.0
TOKENS = 24
ANNOTATION = {"nvext": {"annotations": [f"output_replay_id:{REPLAY_KEY}"]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    spec = DynamoSpec(kind="dynamo", workers=1, discovery="file", speedup_ratio=SPEEDUP, output_tokens=TOKENS)
    stack = DynamoStack(spec, tmp_path_factory.mktemp("dynamo"))
    stack.start()
    try:
        stack.wait_ready(60)
        assert stack.endpoints.http is not None
        yield stack.endpoints.http
    finally:
        stack.stop()


def run_against(tmp_path: Path, url: str, openai: dict, users: int = 4, seconds: int = 5) -> tuple[int, dict]:
    scenario = tmp_path / "openai.yaml"
    scenario.write_text(
        "name: openai\n"
        f"stack: {{kind: external, url: '{url}', model: tiny-mock, ready_path: /health}}\n"
        f"load: {{user: openai, users: {users}, duration: {seconds}s, openai: {json.dumps(openai)}}}\n",
        encoding="utf-8",
    )
    result = run_harness("run", str(scenario), "--runs-dir", "runs", "--no-progress", cwd=tmp_path)
    run_dir = only_run_dir(tmp_path / "runs")
    return result.returncode, json.loads((run_dir / "summary.json").read_text())


def frontend_histograms(url: str) -> dict[str, float]:
    """Sum and count of the frontend's TTFT and ITL histograms (seconds)."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    out = {}
    for name in ("time_to_first_token_seconds", "inter_token_latency_seconds"):
        for part in ("sum", "count"):
            match = re.search(rf"^dynamo_frontend_{name}_{part}{{[^}}]*}} (\S+)$", text, re.M)
            out[f"{name}_{part}"] = float(match.group(1)) if match else 0.0
    return out


def mean_ms(before: dict[str, float], after: dict[str, float], name: str) -> float:
    """Mean of a frontend histogram over what happened between two scrapes."""
    count = after[f"{name}_count"] - before[f"{name}_count"]
    return 1000 * (after[f"{name}_sum"] - before[f"{name}_sum"]) / count


def test_streamed_ttft_and_itl_agree_with_the_frontends_own_histograms(server: str, tmp_path: Path) -> None:
    before = frontend_histograms(server)
    code, summary = run_against(tmp_path, server, {"api": "completions", "stream": True, "max_tokens": TOKENS,
                                                   "extra_body": ANNOTATION})
    after = frontend_histograms(server)
    assert code == ExitCode.PASS and summary["totals"]["errors"] == 0, summary["totals"]
    llm = summary["llm"]
    requests = summary["totals"]["requests"]
    assert requests > 50 and llm["ttft_ms"]["count"] == llm["itl_ms"]["count"] == requests
    assert llm["output_tokens"]["p50"] == pytest.approx(TOKENS, rel=0.01)  # every token arrived
    itl_server_ms = mean_ms(before, after, "inter_token_latency_seconds")
    ttft_server_ms = mean_ms(before, after, "time_to_first_token_seconds")
    # The mocker at speed-up 2 decodes a token in about 3 ms here (its frontend says so too);
    # the client sees the same tokens one network hop later, so the means agree closely.
    assert 1.0 < itl_server_ms < 20.0
    assert 0.5 * itl_server_ms < llm["itl_ms"]["mean"] < 2.0 * itl_server_ms + 1.0, (llm, itl_server_ms)
    # The client's TTFT adds HTTP parsing and tokenization before the frontend's clock starts.
    assert 0.8 * ttft_server_ms <= llm["ttft_ms"]["mean"] < ttft_server_ms + 60.0, (llm, ttft_server_ms)
    expected_rate = TOKENS / (summary["totals"]["latency_ms"]["mean"] / 1000)
    assert llm["tokens_per_s"]["mean"] == pytest.approx(expected_rate, rel=0.35)


def test_unary_chat_records_tokens_but_no_ttft(server: str, tmp_path: Path) -> None:
    code, summary = run_against(tmp_path, server, {"api": "chat", "stream": False, "max_tokens": TOKENS,
                                                   "extra_body": ANNOTATION}, users=2, seconds=3)
    assert code == ExitCode.PASS and summary["totals"]["errors"] == 0
    assert "ttft_ms" not in summary["llm"] and "itl_ms" not in summary["llm"]
    assert summary["llm"]["output_tokens"]["p50"] == pytest.approx(TOKENS, rel=0.01)


def test_answers_without_text_are_failures_not_fast_tokens(server: str, tmp_path: Path) -> None:
    # Without the replay annotation the mocker emits random token ids no tokenizer can decode:
    # the server answers 200 with `completion_tokens` but no text. That is no TTFT to report.
    code, summary = run_against(tmp_path, server, {"api": "chat", "stream": True}, users=2, seconds=3)
    assert code == ExitCode.PASS  # no SLO set; the failures are in the totals
    totals = summary["totals"]
    assert totals["requests"] > 5 and totals["errors_by_kind"] == {"no_tokens": totals["requests"]}
    assert summary["llm"] == {}


def test_http_errors_are_kept_by_status_and_message(server: str, tmp_path: Path) -> None:
    openai = {"api": "chat", "model": "no-such-model"}
    code, summary = run_against(tmp_path, server, openai, users=1, seconds=2)
    assert code == ExitCode.PASS
    (kind,) = summary["totals"]["errors_by_kind"]
    assert re.fullmatch(r"http_4\d\d", kind), kind
    assert summary["totals"]["errors"] == summary["totals"]["requests"] > 0
