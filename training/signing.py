"""The signing key: an HMAC-SHA256 key kept outside the MLflow registry and the ledger's
database, so whoever can write to those (the MLflow UI's pencil, an SQL console) still
cannot forge a promotion or re-hash the ledger (docs/security.md).

The key is a file of 32 random bytes, hex-encoded: `AGRICREDIT_SIGNING_KEY_FILE`, or
`signing.key` beside the MLflow artifact root by default. It is created, readable by its
owner only, the first time something is signed; verifying never creates one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any


class SigningKeyError(RuntimeError):
    """No usable signing key where one is needed."""


def canonical(payload: dict[str, Any]) -> bytes:
    """The bytes a signature covers: sorted keys, no whitespace."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


class SigningKey:
    """HMAC-SHA256 over canonical JSON with the key in one file."""

    def __init__(self, secret: bytes, path: Path) -> None:
        self._secret = secret
        self.path = path

    @classmethod
    def read(cls, path: Path, *, create: bool = False) -> SigningKey:
        """The key at `path`; with `create`, a new one is written there if none exists.

        Raises:
            SigningKeyError: no key there (and not asked to create one), or not a key.
        """
        path = Path(path)
        if not path.exists():
            if not create:
                raise SigningKeyError(
                    f"no signing key at {path}: promotions and ledger checkpoints are signed "
                    "with it; point AGRICREDIT_SIGNING_KEY_FILE at the key the models were "
                    "promoted with"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
        try:
            secret = bytes.fromhex(path.read_text().strip())
        except ValueError as exc:
            raise SigningKeyError(f"{path} is not a hex-encoded signing key") from exc
        if len(secret) < 16:
            raise SigningKeyError(f"{path} holds a key of {len(secret)} bytes; use 32")
        return cls(secret, path)

    def sign(self, payload: dict[str, Any]) -> str:
        """Hex HMAC of the payload's canonical form."""
        return hmac.new(self._secret, canonical(payload), hashlib.sha256).hexdigest()

    def sign_bytes(self, data: bytes) -> str:
        """Hex HMAC of raw bytes."""
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def verify(self, payload: dict[str, Any], signature: str) -> bool:
        """Whether `signature` is this key's signature of `payload` (constant time)."""
        return hmac.compare_digest(self.sign(payload), signature)
