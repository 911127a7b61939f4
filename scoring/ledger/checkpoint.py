"""The ledger's high-water mark outside the database: the last row's sequence number and
hash, signed with the signing key, in a file the database's users cannot write.

Row MACs make an edit, a forged append or a re-hashed chain visible; they cannot show rows
that are simply gone from the end. The checkpoint can: a ledger whose rows stop before the
checkpoint's, or whose row at that number has another hash, lost its tail. The service
writes it every few seconds while it commits and when it stops (docs/security.md).
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from training.signing import SigningKey


@dataclass(frozen=True)
class Checkpoint:
    """The ledger's last row when the checkpoint was written."""

    seq: int
    row_hash: str
    at: str


class CheckpointError(RuntimeError):
    """The checkpoint file exists but is not one the signing key wrote."""


class CheckpointFile:
    """One signed checkpoint, replaced atomically, never moved backwards."""

    def __init__(self, path: Path, key: SigningKey) -> None:
        self.path = Path(path)
        self.key = key

    def read(self) -> Checkpoint | None:
        """The checkpoint, or None if none was written yet.

        Raises:
            CheckpointError: the file is not readable, or its signature does not verify.
        """
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: not a readable checkpoint: {exc}") from exc
        signature = data.pop("signature", "")
        if not self.key.verify(data, signature):
            raise CheckpointError(f"{self.path}: its signature does not verify (changed by hand?)")
        return Checkpoint(int(data["seq"]), str(data["row_hash"]), str(data["at"]))

    def write(self, checkpoint: Checkpoint) -> bool:
        """Replace the file with `checkpoint` unless it holds a later one; True if written.
        Workers of one service write in turn (a lock beside the file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current = self.read()
            except CheckpointError:
                current = None  # a bad file is replaced; verify has already said so
            if current is not None and current.seq >= checkpoint.seq:
                return False
            data = asdict(checkpoint)
            data["signature"] = self.key.sign(data)
            temporary = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(data))
            os.replace(temporary, self.path)
            return True
