"""Where the store is: `--store` over `HARNESS_STORE` over `<runs dir>/results.db`.

A plain path is an SQLite file; anything with `://` is an SQLAlchemy URL
(`postgresql+psycopg://user@host/db`; a bare `postgresql://` gets the psycopg driver, the one
the `store` extra installs). Light on purpose: the parser of every `harness` command reads it.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STORE_ENV = "HARNESS_STORE"
REGRESS_ENV = "HARNESS_REGRESS"  # `run --regress PCT`: judge the history after recording
DEFAULT_FILE = "results.db"


@dataclass(frozen=True)
class StoreUrl:
    url: str  # for SQLAlchemy
    source: str  # what gave it, for messages: `--store`, `HARNESS_STORE`, the default

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The file of an SQLite store (None: in memory, or not SQLite)."""
        if not self.is_sqlite:
            return None
        rest = self.url.split(":///", 1)[1] if ":///" in self.url else ""
        rest = rest.split("?", 1)[0]
        return Path(rest) if rest and rest != ":memory:" else None


def resolve(flag: str | None, runs_dir: Path | None = None, environ: Mapping[str, str] | None = None,
            default: bool = True) -> StoreUrl | None:
    """The store a command uses; None when none is given and `default` is off (recording)."""
    env = os.environ if environ is None else environ
    if flag is not None and flag.strip():
        return StoreUrl(to_url(flag.strip()), "--store")
    text = env.get(STORE_ENV, "").strip()
    if text:
        return StoreUrl(to_url(text), STORE_ENV)
    if not default:
        return None
    root = runs_dir if runs_dir is not None else Path(env.get("HARNESS_RUNS_DIR", "").strip() or "runs")
    return StoreUrl(to_url(str(root / DEFAULT_FILE)), "the default")


def to_url(text: str) -> str:
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser().resolve()}"
    if text.startswith("postgresql://") or text.startswith("postgres://"):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text
