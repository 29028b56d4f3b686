"""A real Triton Inference Server, started from the nvidia-pytriton wheel's binary."""

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import StackFailed
from harness.load.target import Target
from harness.observers.scrape_profile import ScrapeProfile
from harness.procs import ManagedProcess, ProcessId, tail
from harness.stacks.base import Endpoints, Health, Stack, StopReport, probe_http, probe_post
from harness.stacks.ports import free_ports
from harness.triton.install import TritonInstall, cache_root
from harness.triton.metrics_profile import TRITON_PROFILE
from harness.triton.modelzoo import ZOO, ModelOptions
from harness.triton.shm import ShmWatch
from harness.triton.spec import TritonSpec
from harness.triton.zoo_large import model_parameters

STUB_NAME = "triton_python_backend_stub"


class TritonStack(Stack):
    kind = "triton"

    def __init__(
        self,
        spec: TritonSpec,
        workdir: Path,
        extra_args: list[str] | None = None,
        collector_url: str | None = None,
    ):
        self.spec = spec
        self.workdir = workdir
        self.extra_args = extra_args or []
        self.collector_url = collector_url  # opentelemetry mode: where spans go
        self.trace_overrides: dict[str, Any] = {}  # set by a restart-with-new-settings fault
        self.process: ManagedProcess | None = None
        self.launcher: Callable[..., ManagedProcess] = ManagedProcess  # a container stack swaps in its own
        self.ports: dict[str, int] = {}
        self.shm = ShmWatch("triton_python_backend_shm_region_")
        self.install: TritonInstall | None = None

    @property
    def model_name(self) -> str:
        return self.spec.model

    @property
    def _host(self) -> str:
        return f"[{self.spec.listen}]" if ":" in self.spec.listen else self.spec.listen

    @property
    def endpoints(self) -> Endpoints:
        if not self.ports:
            return Endpoints()
        return Endpoints(
            http=f"http://{self._host}:{self.ports['http']}",
            grpc=f"{self._host}:{self.ports['grpc']}",
            metrics=f"http://{self._host}:{self.ports['metrics']}/metrics",
        )

    def scrape_profile(self) -> ScrapeProfile:
        return TRITON_PROFILE

    def start(self) -> None:
        self.install = TritonInstall.find()
        repo = self.workdir / "models"
        options = ModelOptions(self.spec.instances, self.spec.delay_ms, self.spec.max_batch_size,
                               model_parameters(self.spec.model_file))
        ZOO[self.spec.model].write(repo, self.spec.model, options)
        backends = self.install.backend_dir(cache_root())
        if not self.ports:  # a restart keeps its ports, so clients keep their URLs
            http, grpc, metrics = free_ports(3)
            self.ports = {"http": http, "grpc": grpc, "metrics": metrics}
        self.process = self.launcher(
            self._argv(repo, backends),
            self.install.environment(),
            self.workdir / "logs" / "tritonserver.log",
            cwd=self.workdir,
        )
        self.stop_log.parent.mkdir(parents=True, exist_ok=True)
        self.stop_log.touch()  # followed from the start; stop() appends to it

    def _argv(self, repo: Path, backends: Path) -> list[str]:
        assert self.install is not None
        return [
            str(self.install.binary),
            f"--model-repository={repo.resolve()}",
            f"--backend-directory={backends}",
            f"--http-address={self.spec.listen}",
            f"--http-port={self.ports['http']}",
            f"--grpc-address={self.spec.listen}",
            f"--grpc-port={self.ports['grpc']}",
            f"--metrics-address={self.spec.listen}",
            f"--metrics-port={self.ports['metrics']}",
            "--allow-gpu-metrics=false",
            "--strict-readiness=true",
            "--exit-on-error=true",
            *self._model_control_args(),
            *self._trace_args(),
            *self.extra_args,
        ]

    def _model_control_args(self) -> list[str]:
        if self.spec.model_control == "none":
            return []
        return ["--model-control-mode=explicit", f"--load-model={self.spec.model}"]

    @property
    def model_control(self) -> str:
        return self.spec.model_control

    @property
    def model_repository(self) -> Path:
        return (self.workdir / "models").resolve()

    @property
    def model_control_url(self) -> str | None:
        return self.endpoints.http

    @property
    def stop_log(self) -> Path:
        """What each stop found left behind, one line each: a log the log patterns can count."""
        return self.workdir / "logs" / "stack-stop.log"

    @property
    def trace_file(self) -> Path:
        return (self.workdir / "traces" / "trace.json").resolve()

    def _trace_args(self) -> list[str]:
        from harness.tracing.config import trace_config_args

        if self.spec.trace is None:
            return []
        self.trace_file.parent.mkdir(parents=True, exist_ok=True)
        settings = self.spec.trace.settings(str(self.trace_file), self.collector_url or "")
        settings.update(self.trace_overrides)
        return trace_config_args(settings)

    def wait_ready(self, timeout: float) -> float:
        assert self.process is not None, "start() first"
        started = time.monotonic()
        ready_url = f"{self.endpoints.http}/v2/health/ready"
        while time.monotonic() - started < timeout:
            code = self.process.returncode()
            if code is not None:
                raise StackFailed(
                    f"tritonserver exited with code {code} before it was ready; "
                    f"log {self.process.log_path}: {tail(self.process.log_path)}"
                )
            if probe_http(ready_url, timeout=1.0).ok:
                live = self.process.refresh_descendants()
                self.shm.remember_mapped_by([self.process.pid, *(p.pid for p in live)])
                return time.monotonic() - started
            time.sleep(0.2)
        raise StackFailed(
            f"tritonserver not ready after {timeout:.0f}s (stack.startup_timeout); "
            f"log {self.process.log_path}: {tail(self.process.log_path)}"
        )

    def health(self, timeout: float = 0.5) -> Health:
        return probe_http(f"{self.endpoints.http}/v2/health/ready", timeout)

    def target(self, request_timeout: float) -> Target:
        model = ZOO[self.spec.model]
        return Target(
            http_url=self.endpoints.http,
            grpc_url=self.endpoints.grpc,
            model=self.spec.model,
            input_name=model.input_name,
            output_name=model.output_name,
            datatype=model.datatype,
            shape=self._request_shape(),
            request_timeout=request_timeout,
        )

    def _request_shape(self) -> tuple[int, ...]:
        """A batch of one; a model with `max_batch_size: 0` has no batch dimension (Triton refuses
        [1, 4] for dims [4]: "unexpected shape for input")."""
        dims = ZOO[self.spec.model].dims
        return (1, *dims) if self.spec.max_batch_size > 0 else dims

    def canary(self, timeout: float) -> Health:
        """One inference of the served model over HTTP (KServe v2), as a client would send it."""
        model = ZOO[self.spec.model]
        count = math.prod(model.dims)
        shape = list(self._request_shape())
        body = {"inputs": [{"name": model.input_name, "shape": shape, "datatype": model.datatype,
                            "data": [0] * count}]}
        url = f"{self.endpoints.http}/v2/models/{self.spec.model}/infer"
        return probe_post(url, json.dumps(body).encode(), timeout)

    def owned_processes(self) -> list[ManagedProcess]:
        return [self.process] if self.process is not None else []

    def roles(self) -> dict[str, list[ProcessId]]:
        if self.process is None:
            return {}
        live = self.process.refresh_descendants()
        server = [self.process.ident] if self.process.ident.alive() is not None else []
        stubs = [p for p in live if p.name.startswith(STUB_NAME[:15])]
        return {"server": server, "stub": stubs}

    def log_files(self) -> dict[str, Path]:
        return {"server": self.process.log_path, "stop": self.stop_log} if self.process else {}

    def stop(self, graceful: bool = True) -> StopReport:
        report = StopReport()
        if self.process is None:
            return report
        result = self.process.stop(self.spec.stop_timeout if graceful else 0.0)
        report.exits["server"] = result.as_exit(self.process.pid)
        if result.leftovers_killed:
            pids = ", ".join(str(p.pid) for p in result.leftovers_killed)
            report.leaks.append(f"{len(result.leftovers_killed)} orphaned process(es) killed: {pids}")
        removed = self.shm.remove_left()
        if removed:
            report.leaks.append(f"{len(removed)} shared-memory region(s) left in /dev/shm: removed")
        self._log_stop(result.leftovers_killed, removed)
        return report

    def _log_stop(self, orphans: list[ProcessId], regions: list[str]) -> None:
        """One line per leftover, so `log.NAME` patterns (and SLOs on them) can count leaks."""
        lines = [f"orphaned process left after stop: pid {p.pid} {p.name}" for p in orphans]
        lines += [f"shared-memory region left in /dev/shm after stop: {name} (removed)" for name in regions]
        self.stop_log.parent.mkdir(parents=True, exist_ok=True)
        with self.stop_log.open("a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(model=self.spec.model, version=self.install.version if self.install else None)
        if self.spec.trace is not None:
            info["trace"] = {**self.spec.trace.model_dump(exclude_none=True), **self.trace_overrides}
            info["trace_url"] = self.collector_url
        if self.process is not None:
            info["pid"] = self.process.pid
        return info
