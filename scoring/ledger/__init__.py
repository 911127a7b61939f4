"""The record: decisions on a hash chain with their idempotency claims, the group-commit
writer, API keys and the pre-approval job store, in one database."""

from scoring.ledger.jobs import Job, JobStore
from scoring.ledger.keys import ApiKey, KeyStore, create_key
from scoring.ledger.repo import Ledger, StoredDecision

__all__ = ["ApiKey", "Job", "JobStore", "KeyStore", "Ledger", "StoredDecision", "create_key"]
