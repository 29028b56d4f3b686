"""The store's tables, as SQLAlchemy 2 typed ORM classes.

One `runs` row per recorded run (a plain run, a series' repetition, a soak's cycle), keyed on
`run_key` (the run's identity from its journal, not its folder's path: a folder copied to another
machine and imported there is the same run). Its SLO results, fault impacts and per-second
aggregates hang off it and go with it. Times are UTC, stored without a zone (SQLite keeps none).

The schema is changed only through a new Alembic revision in `migrations/versions/`; a test
checks that these classes and the migrated database agree.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime()}


class RunRecord(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_scenario_started", "scenario", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_key: Mapped[str] = mapped_column(String(255), unique=True)
    scenario: Mapped[str] = mapped_column(String(255))
    scenario_sha256: Mapped[str | None] = mapped_column(String(64))  # of the run's scenario.yaml copy
    kind: Mapped[str] = mapped_column(String(16))  # run, repetition, soak_cycle
    group_name: Mapped[str | None] = mapped_column(String(255))  # the series' or soak's folder name
    position: Mapped[int | None] = mapped_column(Integer)  # the cycle's number, the repetition's index
    started_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    run_dir: Mapped[str] = mapped_column(Text)  # where it was read from (absolute)
    stack_kind: Mapped[str | None] = mapped_column(String(64))
    stack_version: Mapped[str | None] = mapped_column(String(128))  # as the stack reported it at start
    stack_info: Mapped[dict[str, Any]]  # the rest of what it reported, less ports and PIDs
    harness_version: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    expect: Mapped[str | None] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(32))
    exit_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    requests: Mapped[int | None] = mapped_column(BigInteger)
    ok: Mapped[int | None] = mapped_column(BigInteger)
    errors: Mapped[int | None] = mapped_column(BigInteger)
    error_rate: Mapped[float | None] = mapped_column(Float)
    throughput_rps: Mapped[float | None] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    p50_ms: Mapped[float | None] = mapped_column(Float)
    p99_ms: Mapped[float | None] = mapped_column(Float)
    totals: Mapped[dict[str, Any]]  # summary.json's `totals` as written
    findings: Mapped[list[Any]]

    slos: Mapped[list["SloResult"]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="SloResult.position")
    faults: Mapped[list["FaultImpact"]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="FaultImpact.position")
    seconds: Mapped[list["RunSecond"]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="RunSecond.t")


class SloResult(Base):
    __tablename__ = "slo_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # its place in the scenario's `slo` list
    name: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(String(255))
    op: Mapped[str] = mapped_column(String(4))
    threshold: Mapped[float | None] = mapped_column(Float)
    window: Mapped[str] = mapped_column(String(255))
    measured: Mapped[float | None] = mapped_column(Float)  # None: not measurable in this run
    passed: Mapped[bool | None]
    samples: Mapped[int | None] = mapped_column(BigInteger)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    ci_method: Mapped[str | None] = mapped_column(String(64))

    run: Mapped[RunRecord] = relationship(back_populates="slos")


class FaultImpact(Base):
    __tablename__ = "fault_impacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    fault_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    injected_t: Mapped[float | None] = mapped_column(Float)
    detect_s: Mapped[float | None] = mapped_column(Float)
    recover_s: Mapped[float | None] = mapped_column(Float)
    detected_by: Mapped[str | None] = mapped_column(Text)
    failed_requests: Mapped[int | None] = mapped_column(BigInteger)
    error_window_s: Mapped[float | None] = mapped_column(Float)  # first to last failed request
    errors_by_kind: Mapped[dict[str, Any]]

    run: Mapped[RunRecord] = relationship(back_populates="faults")


class RunSecond(Base):
    """One second of the load, coarse: counts and two percentiles, never the histogram."""

    __tablename__ = "run_seconds"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    t: Mapped[int] = mapped_column(Integer, primary_key=True)  # the second on the run's clock
    requests: Mapped[int] = mapped_column(Integer)
    ok: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    p50_ms: Mapped[float | None] = mapped_column(Float)
    p99_ms: Mapped[float | None] = mapped_column(Float)

    run: Mapped[RunRecord] = relationship(back_populates="seconds")
