"""The hash chain: each row's hash covers its content and the previous row's hash, so an
edit, a deletion or a reordering anywhere breaks every link after it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical(data: object) -> str:
    """JSON with sorted keys and no spaces: one text per value, hashed the same everywhere
    (orjson: the ledger writes one per decision, so its speed is the writer's)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str).decode()


def link_hash(prev_hash: str, decision_id: str, key_id: str, kind: str, created_at: str,
              body: str) -> str:  # fmt: skip
    """The hash of one row given the previous row's hash.

    The short fields are joined by a unit separator (none of them may hold one) and the
    body follows a record separator, so the body is hashed as it is stored, not re-encoded.
    """
    head = "\x1f".join((prev_hash, decision_id, key_id, kind, created_at))
    if "\x1e" in head or head.count("\x1f") != 4:
        raise ValueError(f"ledger row {decision_id!r}: an id holds a separator character")
    return hashlib.sha256(f"{head}\x1e{body}".encode()).hexdigest()


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


def verify_rows(rows: list[dict[str, Any]]) -> ChainReport:
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
