"""The hash chain: each row's hash covers its content and the previous row's hash, so an
edit, a deletion or a reordering anywhere breaks every link after it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

GENESIS = "0" * 64


def canonical(data: object) -> str:
    """JSON with sorted keys and no spaces: one text per value, hashed the same everywhere."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def link_hash(prev_hash: str, decision_id: str, key_id: str, kind: str, created_at: str,
              body: str) -> str:  # fmt: skip
    """The hash of one row given the previous row's hash."""
    content = canonical([prev_hash, decision_id, key_id, kind, created_at, body])
    return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain."""

    rows: int
    head: str
    problems: list[str]

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return not self.problems


def verify_rows(rows: list[dict]) -> ChainReport:
    """Walk rows in sequence order and report every broken link."""
    problems: list[str] = []
    prev = GENESIS
    for row in rows:
        if row["prev_hash"] != prev:
            problems.append(f"seq {row['seq']} ({row['decision_id']}): does not follow the row "
                            "before it (a row was deleted, inserted or reordered)")  # fmt: skip
        expected = link_hash(row["prev_hash"], row["decision_id"], row["key_id"], row["kind"],
                             row["created_at"], row["body"])  # fmt: skip
        if row["row_hash"] != expected:
            problems.append(f"seq {row['seq']} ({row['decision_id']}): content does not match "
                            "its hash (the row was edited)")  # fmt: skip
        prev = row["row_hash"]
    return ChainReport(len(rows), prev, problems)
