"""Service settings, from AGRICREDIT_* environment variables."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from training.config import get_training_settings

# the versioned policy shipped with the package (scoring/policies/)
DEFAULT_POLICY = Path(__file__).parent / "policies" / "v2.yaml"


class Settings(BaseSettings):
    """Where the data, ledger, policy and model come from, and the request limits.

    `clock`: "now" (the default) decides as of the wall clock; "data" as of just after the
    latest event in the loaded data (a world extracted in the past, and back-tests).
    """

    model_config = SettingsConfigDict(env_prefix="AGRICREDIT_", extra="ignore")

    data_dir: Path = Path("data/store")  # make demo's store, the data commands' default
    database_url: str | None = None
    policy_path: Path = DEFAULT_POLICY
    model_ref: str = "champion"
    clock: Literal["data", "now"] = "now"
    max_body_bytes: int = 64 * 1024
    # well-formed POST /v1/score requests skip the framework's request handling
    # (scoring/api/fast_path.py); off, the route answers every request itself
    score_fast_path: bool = True
    # a co-op's member list may be long: its route alone takes bodies up to this size
    max_batch_body_bytes: int = 16 * 1024 * 1024
    # a scene's raster uploaded by a feed (PUT /v1/data/files/...) may be this large
    max_file_body_bytes: int = 2 * 1024**3
    # pre-approvals of up to this many members are answered at once; larger ones are jobs
    preapproval_sync_members: int = 500
    preapproval_chunk_members: int = 2000  # members decided and committed together
    preapproval_lease_seconds: float = 30.0  # a stopped worker's job is taken over after this

    # a client's deadlines for its request's headers, then its body (scoring/http_protocol.py)
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 60.0
    # the ledger's signed high-water mark, outside the database (scoring/ledger/checkpoint.py)
    ledger_checkpoint_file: Path | None = None
    ledger_checkpoint_seconds: float = 5.0
    # how often a worker serving a store looks for new commits to its arrival log
    # (scoring/decide/follower.py; a look costs about 6 ms); 0 reads the data once, at start
    follow_log_seconds: float = 0.25
    # under clock "now", every farmer's features are built again as of the wall clock when
    # this old (and at each commit); decisions are made as of that instant
    refresh_features_seconds: float = 60.0
    # several workers of `serve` share one follower of the host, which builds the farmers'
    # snapshot rows and publishes them in `live_dir` (scoring/decide/shared_snapshot.py;
    # `serve` makes the directory); off, each worker builds its own (as one worker does)
    host_follower: bool = True
    live_dir: Path | None = None
    # data older than this (seconds from their as-of time to now) make the worker not ready;
    # None takes any age (the simulated world, back-tests). /readyz always says the age.
    max_data_age_seconds: float | None = None

    @property
    def ledger_url(self) -> str:
        """The ledger database: AGRICREDIT_DATABASE_URL, else SQLite in the data directory."""
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def signing_key_path(self) -> Path:
        """The deployment's signing key (promotions, ledger rows, checkpoints)."""
        return get_training_settings().signing_key_path

    @property
    def ledger_checkpoint_path(self) -> Path:
        """AGRICREDIT_LEDGER_CHECKPOINT_FILE, else beside the SQLite file, or beside the key
        named after the database's URL (one file per ledger)."""
        if self.ledger_checkpoint_file is not None:
            return self.ledger_checkpoint_file
        url = self.ledger_url
        if url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///") + ".checkpoint")
        which = hashlib.sha256(url.encode()).hexdigest()[:16]
        return self.signing_key_path.with_name(f"ledger-{which}.checkpoint")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
