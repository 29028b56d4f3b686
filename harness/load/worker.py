"""`harness worker --master HOST:PORT`: a Locust worker that records like a local run.

Import only after Locust (gevent's monkey-patching): `harness.cli` does.
"""

import logging
import math
import os
import socket
import time
from dataclasses import asdict
from typing import Any

import gevent
from locust.env import Environment
from locust.rpc import Message
from locust.runners import WorkerRunner

from harness.errors import HarnessError
from harness.load import wire
from harness.load.driver import build_user_class, rate_schedule
from harness.load.pacer import Pacer, RateSchedule, RateStep
from harness.load.recorder import Recorder
from harness.load.requests import RequestListener
from harness.load.workeropts import split_master

log = logging.getLogger(__name__)


class HarnessWorker:
    """One worker process: waits for the master's setup, then runs the users Locust spawns."""

    def __init__(self, master_host: str, master_port: int, target_host: str | None = None):
        self.target_host = target_host
        self.recorder: Recorder | None = None
        self.pacer: Pacer | None = None
        self.report = wire.WorkerReport(host=socket.gethostname(), pid=os.getpid())
        self.env = Environment(user_classes=[])
        self.runner: WorkerRunner = self.env.create_worker_runner(master_host, master_port)
        self.runner.register_message(wire.SETUP, self._on_setup)
        self.runner.register_message(wire.FINAL, self._on_final)
        self._sender = gevent.spawn(self._send_seconds_forever)
        self._deadline: gevent.Greenlet | None = None

    def wait(self) -> None:
        """Until the master says quit (or goes silent, or the deadline passes)."""
        self.runner.greenlet.join()
        self._sender.kill()

    def _on_setup(self, environment: Environment, msg: Message, **_: Any) -> None:
        if self.recorder is not None:  # one run per worker process: a second setup is a mistake
            log.warning("ignoring a second setup from the master")
            return
        setup = wire.Setup.from_message(msg.data)
        spec = setup.load_spec()
        self.recorder = Recorder(lambda: time.time() - setup.clock_origin_wall)
        if spec.open_model:
            self.pacer = _share_of_pacer(rate_schedule(spec), setup)
        target = setup.target_for(self.target_host)
        user_class = build_user_class(spec, target, self.pacer)
        user_class.__name__ = setup.user_class_name  # Locust spawns users by class name
        environment.user_classes = [user_class]
        environment.host = target.http_url
        listener = RequestListener(self.recorder)
        environment.events.request.add_listener(listener.on_request)
        if self._deadline is None:
            self._deadline = gevent.spawn_later(max(0.0, setup.deadline_wall - time.time()), self._give_up)
        log.info("set up for %s users against %s", spec.user, target.http_url or target.grpc_url)

    def _on_final(self, environment: Environment, msg: Message, **_: Any) -> None:
        records = self.recorder.pop_complete(everything=True) if self.recorder else []
        self.report.add_seconds(records)
        if self.pacer is not None:
            self.report.intended_sent = self.pacer.issued
            self.report.unsent = self.pacer.unsent()
        self._send(records, watermark=math.inf, final=True)

    def _send_seconds_forever(self) -> None:
        while True:
            gevent.sleep(wire.REPORT_INTERVAL_S)
            if self.recorder is None:
                continue
            now = self.recorder.clock()
            records = self.recorder.pop_complete(now)
            self.report.add_seconds(records)
            self._send(records, watermark=float(math.floor(now)), final=False)

    def _send(self, records: list[dict[str, Any]], watermark: float, final: bool) -> None:
        data: dict[str, Any] = {"records": records, "watermark": watermark, "final": final}
        if final:
            data["report"] = asdict(self.report)
        try:
            self.runner.send_message(wire.SECONDS, data)
        except Exception as exc:  # noqa: BLE001 - a master gone away; the heartbeat check ends us
            log.warning("could not send seconds to the master: %r", exc)

    def _give_up(self) -> None:
        log.error("the run's deadline passed without a quit from the master; stopping")
        self.runner.quit()


def _share_of_pacer(schedule: RateSchedule, setup: wire.Setup) -> Pacer:
    """This worker's part of the arrival schedule, on this host's monotonic clock."""
    steps = [RateStep(s.duration, s.rate * setup.rate_share, s.ramp) for s in schedule.steps]
    origin = time.monotonic() - (time.time() - setup.load_start_wall) + setup.slot_offset
    return Pacer(RateSchedule(steps), origin=origin)


def run_worker(master: str, target_host: str | None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = split_master(master)
    try:  # Locust retries for 5 minutes, so workers may start before their master
        worker = HarnessWorker(host, port, target_host)
    except ConnectionError:
        raise HarnessError(f"no master answered at {master} within 5 minutes") from None
    worker.wait()
    return 0
