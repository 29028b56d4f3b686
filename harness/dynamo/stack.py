"""NVIDIA Dynamo started by the harness: etcd (optional), one frontend, N mocker workers.

Every process is the harness's own child, in its own session, with its own log. Traffic stays on
loopback: the frontend listens on 127.0.0.1, and the workers' request plane and the event plane
advertise 127.0.0.1 (by default Dynamo advertises the host's first non-loopback address).

The mocker's tokens are random 32-bit ids, which no small tokenizer can decode: responses then
report `completion_tokens` but carry no text and stream no per-token chunks. The mocker can
instead replay known token ids (`--response-replay-trace-path`, looked up by the request's
`nvext.annotations: ["output_replay_id:KEY"]`), so the harness writes a one-line trace of
`output_tokens` in-vocabulary ids and the stack's target asks every request to use it.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harness.dynamo.spec import DynamoSpec
from harness.errors import StackFailed
from harness.llm.target import LlmTarget, chat_canary
from harness.llm.tinyllm import output_token_ids, write_model
from harness.load.target import Target
from harness.procs import ManagedProcess, ProcessId, StopResult, tail
from harness.roles import Loss, loss_of, role_table
from harness.stacks.base import Endpoints, Health, Stack, StopReport, get_json, probe_http
from harness.stacks.ports import free_ports

REPLAY_KEY = "harness"
POLL_S = 0.2


class DynamoStack(Stack):
    kind = "dynamo"

    def __init__(self, spec: DynamoSpec, workdir: Path):
        self.spec = spec
        self.workdir = workdir
        self.ports: dict[str, int] = {}
        self.etcd: ManagedProcess | None = None
        self.frontend: ManagedProcess | None = None
        self.workers: list[ManagedProcess] = []

    @property
    def model_name(self) -> str:
        return self.spec.model_name

    @property
    def endpoints(self) -> Endpoints:
        if not self.ports:
            return Endpoints()
        return Endpoints(http=f"http://127.0.0.1:{self.ports['http']}")

    # --- start

    def start(self) -> None:
        python = self._python()
        if not self.ports:  # a restart keeps its ports, so clients keep their URLs
            http, client, peer = free_ports(3)
            self.ports = {"http": http, "etcd_client": client, "etcd_peer": peer}
        model = write_model(self.workdir / "model")
        trace = self._write_replay_trace()
        env = self._environment()
        if self.spec.uses_etcd:
            self.etcd = self._start_etcd()
        self.frontend = ManagedProcess(
            [python, "-m", "dynamo.frontend", *self._frontend_args()], env,
            self._log("frontend"), cwd=self.workdir,
        )
        self.workers = [
            ManagedProcess([python, "-m", "dynamo.mocker", *self._worker_args(model, trace)], env,
                           self._log(f"worker.{i}"), cwd=self.workdir)
            for i in range(self.spec.workers)
        ]

    def _python(self) -> str:
        if self.spec.python is not None:
            return self.spec.python
        import importlib.util

        if importlib.util.find_spec("dynamo") is None:
            raise StackFailed(
                "ai-dynamo is not installed in this environment: pip install --no-deps "
                "ai-dynamo==1.6.1 and the `dynamo` extra (pip install -e '.[dynamo]'), "
                "or set stack.python to an interpreter that has it"
            )
        return sys.executable

    def _log(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def _write_replay_trace(self) -> Path:
        ids = output_token_ids(self.spec.output_tokens)
        line = {"request_id": REPLAY_KEY, "timestamp": 0, "input_length": 1, "hash_ids": [0],
                "output_length": len(ids), "output_token_ids": ids}
        path = self.workdir / "replay.jsonl"
        path.write_text(json.dumps(line) + "\n", encoding="utf-8")
        return path

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "NO_COLOR": "1",
            "DYN_SDK_DISABLE_ANSI_LOGGING": "1",
            # Loopback only: what workers and the frontend advertise to each other.
            "DYN_TCP_RPC_HOST": "127.0.0.1",
            "DYN_TCP_RESPONSE_STREAM_HOST": "127.0.0.1",
            "DYN_EVENT_PLANE_HOST": "127.0.0.1",
            "DYN_SYSTEM_HOST": "127.0.0.1",
            "DYN_FILE_KV": str(self._file_kv_dir()),
        })
        if self.spec.reconcile_s is not None:
            env["DYN_RUNTIME_INHIBITED_DURATION_SECS"] = str(self.spec.reconcile_s)
        if self.spec.uses_etcd:
            env["ETCD_ENDPOINTS"] = f"http://127.0.0.1:{self.ports['etcd_client']}"
            if self.spec.lease_ttl is not None:
                env["ETCD_LEASE_TTL"] = str(self.spec.lease_ttl)
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _file_kv_dir(self) -> Path:
        return (self.workdir / "discovery").resolve()

    def _etcd_dir(self) -> Path:
        return (self.workdir / "etcd-data").resolve()

    def _start_etcd(self) -> ManagedProcess:
        binary = shutil.which("etcd")
        if binary is None:
            raise StackFailed("etcd not found on PATH (Debian: apt-get install etcd-server)")
        client = f"http://127.0.0.1:{self.ports['etcd_client']}"
        peer = f"http://127.0.0.1:{self.ports['etcd_peer']}"
        argv = [
            binary, "--name", "harness", "--data-dir", str(self._etcd_dir()),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"harness={peer}", "--initial-cluster-state", "new",
        ]
        process = ManagedProcess(argv, dict(os.environ), self._log("etcd"), cwd=self.workdir)
        self._wait_etcd(process, f"{client}/health")
        return process

    def _wait_etcd(self, process: ManagedProcess, url: str, timeout: float = 20.0) -> None:
        """Dynamo's processes fail fast without etcd, so etcd is ready before they start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.returncode() is not None:
                raise StackFailed(f"etcd exited with code {process.returncode()}: {tail(process.log_path)}")
            if probe_http(url, timeout=0.5).ok:
                return
            time.sleep(0.1)
        raise StackFailed(f"etcd not healthy after {timeout:.0f}s: {tail(process.log_path)}")

    def _frontend_args(self) -> list[str]:
        args = [
            "--http-host", "127.0.0.1", "--http-port", str(self.ports["http"]),
            "--discovery-backend", self.spec.discovery, "--request-plane", "tcp",
            "--migration-limit", str(self.spec.migration_limit),
        ]
        if self.spec.router_mode is not None:
            args += ["--router-mode", self.spec.router_mode]
        return args

    def _worker_args(self, model: Path, trace: Path) -> list[str]:
        return [
            "--model-path", str(model.resolve()), "--model-name", self.spec.model_name,
            "--discovery-backend", self.spec.discovery, "--request-plane", "tcp",
            "--speedup-ratio", f"{self.spec.speedup_ratio:g}",
            "--response-replay-trace-path", str(trace.resolve()),
        ]

    # --- readiness and health

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        last = "no answer yet"
        while time.monotonic() - started < timeout:
            self._raise_if_exited()
            ready, last = self._serving()
            if ready:
                return time.monotonic() - started
            time.sleep(POLL_S)
        raise StackFailed(
            f"dynamo not ready after {timeout:.0f}s (stack.startup_timeout): {last}; "
            f"frontend log: {tail(self._log('frontend'))}"
        )

    def _raise_if_exited(self) -> None:
        for name, process in self._named_processes():
            code = process.returncode()
            if code is not None:
                raise StackFailed(
                    f"dynamo {name} exited with code {code} before the stack was ready; "
                    f"log {process.log_path}: {tail(process.log_path)}"
                )

    def _serving(self) -> tuple[bool, str]:
        """Ready when the model is listed and every worker's `generate` endpoint is registered."""
        base = self.endpoints.http
        models = get_json(f"{base}/v1/models")
        names = [m.get("id") for m in models.get("data", [])] if isinstance(models, dict) else []
        if self.spec.model_name not in names:
            return False, f"model {self.spec.model_name!r} not listed by /v1/models yet"
        registered = generate_instances(get_json(f"{base}/health"))
        if registered < self.spec.workers:
            return False, f"{registered} of {self.spec.workers} workers registered"
        return True, "ready"

    def health(self, timeout: float = 0.5) -> Health:
        return probe_http(f"{self.endpoints.http}/health", timeout)

    def canary(self, timeout: float) -> Health:
        target = self.target(timeout)
        assert isinstance(target, LlmTarget)
        return chat_canary(target, timeout)

    def target(self, request_timeout: float) -> Target:
        return LlmTarget(
            http_url=self.endpoints.http,
            grpc_url=None,
            model=self.spec.model_name,
            request_timeout=request_timeout,
            extra_body={"nvext": {"annotations": [f"output_replay_id:{REPLAY_KEY}"]}},
        )

    # --- processes

    def _named_processes(self) -> list[tuple[str, ManagedProcess]]:
        named = [("etcd", self.etcd), ("frontend", self.frontend)]
        named += [(f"worker.{i}", w) for i, w in enumerate(self.workers)]
        return [(name, process) for name, process in named if process is not None]

    def roles(self) -> dict[str, list[ProcessId]]:
        def live(processes: list[ManagedProcess | None]) -> list[ProcessId]:
            return [p.ident for p in processes if p is not None and p.ident.alive() is not None]

        return {
            "frontend": live([self.frontend]),
            "worker": live(list(self.workers)),
            "etcd": live([self.etcd]),
        }

    def owned_processes(self) -> list[ManagedProcess]:
        return [process for _, process in self._named_processes()]

    def log_files(self) -> dict[str, Path]:
        return {name: process.log_path for name, process in self._named_processes()}

    def stop(self, graceful: bool = True) -> StopReport:
        """The declared dependencies last: a SIGTERMed worker revokes its lease in etcd."""
        report = StopReport()
        timeout = self.spec.stop_timeout if graceful else 0.0
        declared = role_table(DynamoSpec.ROLES)
        named = sorted(self._named_processes(),  # stable: frontend, then workers, as they started
                       key=lambda item: loss_of(declared, item[0].partition(".")[0]) is Loss.DEPENDENCY)
        for name, process in named:
            _record_stop(report, name, process, process.stop(timeout))
        for folder in (self._etcd_dir(), self._file_kv_dir()):
            shutil.rmtree(folder, ignore_errors=True)  # a restart must not see old registrations
        self.etcd, self.frontend, self.workers = None, None, []
        return report

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            model=self.spec.model_name, workers=self.spec.workers, discovery=self.spec.discovery,
            lease_ttl=self.spec.lease_ttl, reconcile_s=self.spec.reconcile_s,
            migration_limit=self.spec.migration_limit,
            output_tokens=self.spec.output_tokens, speedup_ratio=self.spec.speedup_ratio,
            version=_dynamo_version(),
            pids={name: process.pid for name, process in self._named_processes()},
        )
        return info


def generate_instances(health: Any) -> int:
    """Workers registered for generation, from the frontend's /health answer."""
    if not isinstance(health, dict):
        return 0
    instances = health.get("instances") or []
    return sum(1 for i in instances if isinstance(i, dict) and i.get("endpoint") == "generate")



def _record_stop(report: StopReport, name: str, process: ManagedProcess, result: StopResult) -> None:
    report.exits[name] = result.as_exit(process.pid)
    if result.leftovers_killed:
        pids = ", ".join(str(p.pid) for p in result.leftovers_killed)
        report.leaks.append(f"{name}: {len(result.leftovers_killed)} orphaned process(es) killed: {pids}")


def _dynamo_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-dynamo")
    except PackageNotFoundError:
        return None
