"""What a master and its load workers say to each other, besides Locust's own messages.

Locust's master/worker protocol spawns and stops users and carries Locust's statistics. The
harness adds three messages of its own, so every worker records the same per-second HDR buckets
a local run does and the master's journal holds the whole run's requests:

- `harness_setup` (master -> worker): the load section, the target and the run clock, sent before
  users are spawned, because a worker started with `harness worker` knows nothing of the scenario.
- `harness_seconds` (worker -> master): the worker's completed seconds, once a second, with the
  watermark below which it has sent everything; `final` on the last one.
- `harness_final` (master -> worker): users are stopped, send what is left.
"""

from dataclasses import asdict, dataclass
from typing import Any

from harness.load.target import Target
from harness.scenario import LoadSpec

SETUP = "harness_setup"
SECONDS = "harness_seconds"
FINAL = "harness_final"

# How often a worker sends its completed seconds (Locust's own statistics go every 3 s).
REPORT_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Setup:
    """Everything a worker needs to build the run's user class and record on the run clock."""

    load: dict[str, Any]  # LoadSpec, as the scenario file gave it
    target: dict[str, Any]  # Target fields
    clock_origin_wall: float  # wall time at run clock 0: workers on other hosts bucket by it
    load_start_wall: float  # open model: when the arrival schedule starts
    rate_share: float  # open model: this worker's part of the arrival rate (0..1)
    slot_offset: float  # open model: seconds to shift this worker's arrivals, so workers interleave
    deadline_wall: float  # a worker stops by itself after this, even if the master is gone
    user_class_name: str

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> "Setup":
        return cls(**data)

    def load_spec(self) -> LoadSpec:
        return LoadSpec.model_validate(self.load)

    def target_for(self, target_host: str | None) -> Target:
        """The target, with its host replaced where a worker reaches the stack by another name."""
        fields = dict(self.target)
        fields["shape"] = tuple(fields["shape"])
        if target_host:
            for key in ("http_url", "grpc_url"):
                if fields.get(key):
                    fields[key] = replace_host(fields[key], target_host)
        return Target(**fields)


def replace_host(url: str, host: str) -> str:
    """`http://127.0.0.1:8000` with host `10.0.0.5` -> `http://10.0.0.5:8000` (also bare host:port)."""
    scheme, sep, rest = url.rpartition("://")
    hostport, slash, path = rest.partition("/")
    port = hostport.rsplit(":", 1)[1] if ":" in hostport else ""
    new = f"{host}:{port}" if port else host
    return f"{scheme}{sep}{new}{slash}{path}"


@dataclass
class WorkerReport:
    """One worker's account of its own requests, sent with its final seconds."""

    requests: int = 0
    ok: int = 0
    intended_sent: int | None = None  # open model only
    unsent: int | None = None
    host: str = ""
    pid: int = 0

    def add_seconds(self, records: list[dict[str, Any]]) -> None:
        self.requests += sum(int(r["requests"]) for r in records)
        self.ok += sum(int(r["ok"]) for r in records)
