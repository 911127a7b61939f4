"""The hash chain: each row's hash covers its content and the previous row's hash, so an
edit, a deletion or a reordering anywhere breaks every link after it; each row's MAC (the
hash keyed with the signing key) shows whether the service wrote it, so neither a forged
append nor a chain re-hashed after an edit verifies."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from training.signing import SigningKey

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
    """The outcome of walking the chain. `keyed`: row MACs were checked with the key."""

    rows: int
    head: str
    problems: list[str]
    keyed: bool = False
    last_seq: int = 0

    @property
    def ok(self) -> bool:
        """True when every link holds."""
        return not self.problems


MAX_PROBLEMS = 100  # a report lists the first ones; the count says how many there were


def verify_rows(rows: Iterable[Mapping[Any, Any]], key: SigningKey | None = None) -> ChainReport:
    """Walk rows in sequence order (any iterable: a stream is read once, in bounded
    memory) and report every broken link, and with `key` every row whose MAC does not
    verify (a forged append, or a chain re-hashed after an edit)."""
    problems: list[str] = []
    found = 0
    prev, count, last_seq = GENESIS, 0, 0

    def problem(text: str) -> None:
        nonlocal found
        found += 1
        if found <= MAX_PROBLEMS:
            problems.append(text)

    for row in rows:
        count += 1
        last_seq = int(row["seq"])
        where = f"seq {row['seq']} ({row['decision_id']})"
        if row["prev_hash"] != prev:
            problem(f"{where}: does not follow the row before it (a row was deleted, "
                    "inserted or reordered)")  # fmt: skip
        expected = link_hash(row["prev_hash"], row["decision_id"], row["key_id"], row["kind"],
                             row["created_at"], row["body"])  # fmt: skip
        if row["row_hash"] != expected:
            problem(f"{where}: content does not match its hash (the row was edited)")
        elif key is not None and not _mac_ok(key, row):
            problem(f"{where}: its MAC does not verify: the row was not written by the "
                    "service (a forged row, or the chain re-hashed after an edit)")  # fmt: skip
        prev = row["row_hash"]
    if found > MAX_PROBLEMS:
        problems.append(f"... and {found - MAX_PROBLEMS} more")
    return ChainReport(count, prev, problems, keyed=key is not None, last_seq=last_seq)


def _mac_ok(key: SigningKey, row: Mapping[Any, Any]) -> bool:
    mac = row.get("row_mac")
    return isinstance(mac, str) and hmac.compare_digest(
        key.sign_bytes(str(row["row_hash"]).encode()), mac
    )
