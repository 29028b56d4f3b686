"""The dynamo stack kind's settings, its offline model folder, and `harness compare` output."""

from pathlib import Path

import pytest

from harness.compare import RunRow, text_table
from harness.dynamo.stack import generate_instances
from harness.errors import UsageError
from harness.llm.tinyllm import output_token_ids, vocabulary, write_model
from harness.scenario import load_scenario

BASE = """\
name: d
stack:
  kind: dynamo
{extra}
load: {{user: openai, users: 2, duration: 2s}}
"""


def scenario(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(BASE.format(extra=extra), encoding="utf-8")
    return path


def test_defaults_and_roles(tmp_path: Path) -> None:
    spec = load_scenario(scenario(tmp_path, "  workers: 3")).stack
    assert spec.kind == "dynamo" and spec.workers == 3 and spec.discovery == "etcd"
    assert [r.name for r in type(spec).ROLES] == ["frontend", "worker", "etcd"]


@pytest.mark.parametrize(("extra", "line", "message"), [
    ("  discovery: file\n  lease_ttl: 2", 5, "stack.lease_ttl: an etcd lease TTL needs `discovery: etcd`"),
    ("  workers: 0", 4, "stack.workers: Input should be greater than or equal to 1"),
    ("  discovery: nats", 4, "stack.discovery: Input should be 'etcd' or 'file'"),
    ("  lease_tll: 3", 4, "stack.lease_tll: unknown key; did you mean 'lease_ttl'?"),
])
def test_bad_settings_name_file_line_and_field(tmp_path: Path, extra: str, line: int, message: str) -> None:
    path = scenario(tmp_path, extra)
    with pytest.raises(UsageError) as err:
        load_scenario(path)
    assert str(err.value).splitlines()[0] == f"{path}:{line}: {message}"


def test_fault_roles_are_checked(tmp_path: Path) -> None:
    path = scenario(tmp_path, "  workers: 2\nfaults: [{kind: process_kill, role: server}]")
    with pytest.raises(UsageError, match="has no role 'server' \\(roles: frontend, worker, etcd\\)"):
        load_scenario(path)


def test_model_folder_decodes_replayed_ids_to_words(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    folder = write_model(tmp_path / "model")
    assert {p.name for p in folder.iterdir()} == {"tokenizer.json", "tokenizer_config.json", "config.json",
                                                  "generation_config.json"}
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = output_token_ids(600)
    assert tokenizer.decode(ids[:3]) == "w0 w1 w2" and max(ids) < len(vocabulary())
    assert all(tokenizer.id_to_token(i) for i in ids)  # every replayed id is a word, never special
    assert tokenizer.encode("hello world the").ids == [vocabulary()[w] for w in ("hello", "world", "the")]


def test_generate_instances_counts_workers_only() -> None:
    health = {"instances": [{"endpoint": "generate"}, {"endpoint": "worker_kv_query_source_x"},
                            {"endpoint": "generate"}]}
    assert generate_instances(health) == 2 and generate_instances(None) == 0


def test_compare_table() -> None:
    rows = [
        RunRow("runs/a", "kill-etcd", "reproduced", {"discovery": "etcd", "lease_ttl": 10}, "kill (SIGKILL)",
               900, 8, 5.84, 0.08, 5.91, 6.0, {"http_503": 7, "stream_error": 1}),
        RunRow("runs/b", "sigterm", "pass", {"discovery": "etcd"}, "term (SIGTERM)", 950, 0, 0.0, None, None,
               0.3),
    ]
    lines = text_table(rows).splitlines()
    assert lines[0].split()[:3] == ["run", "settings", "fault"]
    assert "discovery=etcd, lease_ttl=10" in lines[1] and "5.84" in lines[1] and "+5.91s" in lines[1]
    assert "http_503 x7, stream_error x1" in lines[1]
    assert lines[2].split()[-1] == "-" and " 0.00 " in lines[2]
