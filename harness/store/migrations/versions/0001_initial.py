"""The first schema: runs, their SLO results, fault impacts and per-second aggregates.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_key", sa.String(255), nullable=False, unique=True),
        sa.Column("scenario", sa.String(255), nullable=False),
        sa.Column("scenario_sha256", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("group_name", sa.String(255)),
        sa.Column("position", sa.Integer()),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("run_dir", sa.Text(), nullable=False),
        sa.Column("stack_kind", sa.String(64)),
        sa.Column("stack_version", sa.String(128)),
        sa.Column("stack_info", sa.JSON(), nullable=False),
        sa.Column("harness_version", sa.String(64)),
        sa.Column("seed", sa.BigInteger()),
        sa.Column("expect", sa.String(32)),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requests", sa.BigInteger()),
        sa.Column("ok", sa.BigInteger()),
        sa.Column("errors", sa.BigInteger()),
        sa.Column("error_rate", sa.Float()),
        sa.Column("throughput_rps", sa.Float()),
        sa.Column("duration_s", sa.Float()),
        sa.Column("p50_ms", sa.Float()),
        sa.Column("p99_ms", sa.Float()),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
    )
    op.create_index("ix_runs_scenario_started", "runs", ["scenario", "started_at"])
    op.create_table(
        "slo_results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("op", sa.String(4), nullable=False),
        sa.Column("threshold", sa.Float()),
        sa.Column("window", sa.String(255), nullable=False),
        sa.Column("measured", sa.Float()),
        sa.Column("passed", sa.Boolean()),
        sa.Column("samples", sa.BigInteger()),
        sa.Column("ci_low", sa.Float()),
        sa.Column("ci_high", sa.Float()),
        sa.Column("confidence", sa.Float()),
        sa.Column("ci_method", sa.String(64)),
    )
    op.create_index("ix_slo_results_run_id", "slo_results", ["run_id"])
    op.create_table(
        "fault_impacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("fault_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("injected_t", sa.Float()),
        sa.Column("detect_s", sa.Float()),
        sa.Column("recover_s", sa.Float()),
        sa.Column("detected_by", sa.Text()),
        sa.Column("failed_requests", sa.BigInteger()),
        sa.Column("error_window_s", sa.Float()),
        sa.Column("errors_by_kind", sa.JSON(), nullable=False),
    )
    op.create_index("ix_fault_impacts_run_id", "fault_impacts", ["run_id"])
    op.create_table(
        "run_seconds",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("t", sa.Integer(), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("p50_ms", sa.Float()),
        sa.Column("p99_ms", sa.Float()),
    )


def downgrade() -> None:
    op.drop_table("run_seconds")
    op.drop_table("fault_impacts")
    op.drop_table("slo_results")
    op.drop_index("ix_runs_scenario_started", "runs")
    op.drop_table("runs")
