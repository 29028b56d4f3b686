"""What a TorchServe run needs on disk: the install it uses, its config, log layout and archive.

The frontend is started the way the `torchserve` launcher starts it (java with the wheel's
`ts/frontend/*` on the class path, `org.pytorch.serve.ModelServer --python ...`), but directly:
the launcher keeps one PID file in the system temp folder and refuses to start a second
TorchServe on the machine, and as a middle process it would hide the frontend's exit code.
"""

import os
import shutil
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from harness.errors import StackFailed
from harness.torchserve.spec import TorchServeSpec

INSTALL_HINT = "pip install 'serving-harness[torchserve]' (torchserve, torch-model-archiver, torch)"
HANDLERS_DIR = Path(__file__).resolve().parent / "ts_handlers"

# Per-request chatter the frontend and worker log at INFO/DEBUG: dropped, so the log keeps the
# lifecycle lines (launch, state changes, retries, worker output) that the harness reads.
_PER_REQUEST = (
    r".*(Flushing req\.cmd PREDICT|Looping backend response|Backend response time|Backend received inference"
    r"|Sending response for jobId|Waiting time ns|result=\[METRICS\]).*"
)

LOG4J2 = f"""<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="%d{{ISO8601}} [%-5p] %t %c - %m%n"/>
      <RegexFilter regex="{_PER_REQUEST}" onMatch="DENY" onMismatch="NEUTRAL"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="ACCESS_LOG" level="off"/>
    <Logger name="TS_METRICS" level="off"/>
    <Logger name="MODEL_METRICS" level="off"/>
    <Logger name="io.netty" level="error"/>
    <Logger name="org.apache" level="off"/>
    <Logger name="org.pytorch.serve" level="debug" additivity="false">
      <AppenderRef ref="STDOUT"/>
    </Logger>
    <Logger name="MODEL_LOG" level="all" additivity="false">
      <AppenderRef ref="STDOUT"/>
    </Logger>
    <Root level="info"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


@dataclass(frozen=True)
class TorchServeInstall:
    java: str
    home: Path  # the folder holding the `ts` package (TorchServe's model_server_home)
    version: str

    @classmethod
    def find(cls) -> "TorchServeInstall":
        java = _java()
        try:
            import ts
        except ImportError:
            raise StackFailed(f"TorchServe is not installed; {INSTALL_HINT}") from None
        home = Path(ts.__file__).resolve().parent.parent
        if not (home / "ts" / "frontend" / "model-server.jar").is_file():
            raise StackFailed(f"TorchServe: {home}/ts/frontend/model-server.jar is missing; {INSTALL_HINT}")
        return cls(java, home, _version("torchserve"))

    def argv(self, config: Path, store: Path, log_config: Path, tmp: Path, models: str) -> list[str]:
        return [
            self.java,
            f"-Dmodel_server_home={self.home}",
            f"-Djava.io.tmpdir={tmp}",
            f"-Dlog4j.configurationFile=file://{log_config}",
            "-cp", f".:{self.home / 'ts' / 'frontend'}/*",
            "org.pytorch.serve.ModelServer",
            "--python", sys.executable,
            "-f", str(config),
            "-s", str(store),
            "-ncs",
            "--disable-token-auth",
            "-m", models,
        ]

    def environment(self, logs: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["LOG_LOCATION"] = env["METRICS_LOCATION"] = str(logs)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = ":".join(p for p in [bin_dir, env.get("PATH", "")] if p)
        return env


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise StackFailed("TorchServe needs Java 11 or newer: no `java` found "
                          "(Debian: apt-get install openjdk-17-jre-headless)")
    return java


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def server_config(ports: dict[str, int], spec: TorchServeSpec) -> str:
    """config.properties: loopback addresses only, no system-metrics collector process."""
    return "\n".join([
        f"inference_address=http://127.0.0.1:{ports['inference']}",
        f"management_address=http://127.0.0.1:{ports['management']}",
        f"metrics_address=http://127.0.0.1:{ports['metrics']}",
        "grpc_inference_address=127.0.0.1",
        f"grpc_inference_port={ports['grpc_inference']}",
        "grpc_management_address=127.0.0.1",
        f"grpc_management_port={ports['grpc_management']}",
        f"default_workers_per_model={spec.workers}",
        f"default_response_timeout={int(spec.response_timeout)}",
        "disable_system_metrics=true",
        "",
    ])


def model_config(spec: TorchServeSpec) -> dict[str, Any]:
    """The archive's model-config.yaml: worker count, retry timeout, the handler's settings."""
    config: dict[str, Any] = {
        "minWorkers": spec.workers,
        "maxWorkers": spec.workers,
        "responseTimeout": int(spec.response_timeout),
        "handler": {"delay_ms": spec.delay_ms},
    }
    if spec.max_retry_timeout is not None:
        config["maxRetryTimeoutInSec"] = spec.max_retry_timeout
    if spec.exit_at_request is not None:  # absent otherwise: the handlers' config stays as it was
        config["handler"]["exit_at_request"] = spec.exit_at_request
    return config


def build_archive(spec: TorchServeSpec, store: Path, scratch: Path) -> Path:
    """`<store>/<model>.mar` with the built-in handler, made by torch-model-archiver."""
    try:
        from model_archiver.model_archiver_config import ModelArchiverConfig
        from model_archiver.model_packaging import generate_model_archive
    except ImportError:
        raise StackFailed(f"torch-model-archiver is not installed; {INSTALL_HINT}") from None
    store.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    handler = scratch / f"{spec.handler}.py"
    shutil.copyfile(HANDLERS_DIR / f"{spec.handler}.py", handler)
    config_file = scratch / "model-config.yaml"
    config_file.write_text(yaml.safe_dump(model_config(spec)), encoding="utf-8")
    generate_model_archive(ModelArchiverConfig(
        model_name=spec.model, handler=str(handler), version="1.0", export_path=str(store),
        config_file=str(config_file), force=True, archive_format="default",
    ))
    return store / f"{spec.model}.mar"
