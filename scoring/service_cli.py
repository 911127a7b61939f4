"""`agricredit serve`, `agricredit keys ...` and `agricredit ledger verify`."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: AGRICREDIT_DATA_DIR or data/world).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    help="Worker processes; each loads its own model after it starts.",
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request line (the ledger and /metrics already record each decision).",
)
def serve(host: str, port: int, data_dir: Path | None, workers: int, access_log: bool) -> None:
    """Serve the decision API (uvicorn) with the champion model."""
    import uvicorn

    from scoring.workers import run_workers

    if data_dir is not None:
        os.environ["AGRICREDIT_DATA_DIR"] = str(data_dir)  # workers read settings themselves
    if workers > 1:  # a listening socket per worker, so connections spread over them
        raise SystemExit(run_workers(host, port, workers, access_log=access_log))
    uvicorn.run(
        "scoring.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
    )


@contextmanager
def _ledger():
    from scoring.config import get_settings
    from scoring.ledger.repo import Ledger

    ledger = Ledger(get_settings().ledger_url)
    try:
        ledger.migrate()
        yield ledger
    finally:
        ledger.close()


@click.group()
def keys() -> None:
    """API keys: create (shown once), revoke, list."""


@keys.command("create")
@click.option("--role", type=click.Choice(["lender", "coop", "scientist"]), required=True)
@click.option("--coop", "coop_id", default=None, help="The co-op a coop key belongs to.")
@click.option("--name", default="", help="Who the key is for.")
def create_key_command(role: str, coop_id: str | None, name: str) -> None:
    """Create a key and print it once; only its hash is stored."""
    from scoring.auth import create_key

    try:
        with _ledger() as book:
            key_id, secret = create_key(book, role=role, name=name or role, coop_id=coop_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"key_id {key_id}\n{secret}\n(store the key now: it cannot be shown again)")


@keys.command("revoke")
@click.argument("key_id")
def revoke_key_command(key_id: str) -> None:
    """Revoke a key by its key_id."""
    with _ledger() as book:
        revoked = book.revoke_key(key_id)
    if not revoked:
        click.echo(f"no active key {key_id}", err=True)
        raise SystemExit(1)
    click.echo(f"revoked {key_id}")


@keys.command("list")
def list_keys_command() -> None:
    """Keys with role, co-op and state (never the secret)."""
    with _ledger() as book:
        rows = book.list_keys()
    for k in rows:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        click.echo(f"{k.key_id}  {k.role:<9} {k.coop_id or '-':<8} {k.name:<20} {state}")


@click.group()
def ledger() -> None:
    """The decision ledger."""


@ledger.command("verify")
def verify_ledger() -> None:
    """Walk the hash chain; exit 1 on any edited, deleted or reordered row."""
    with _ledger() as book:
        report = book.verify()
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    if not report.ok:
        click.echo(
            f"ledger broken: {len(report.problems)} problem(s) in {report.rows} rows", err=True
        )
        raise SystemExit(1)
    click.echo(f"ledger intact: {report.rows} rows, head {report.head}")


COMMANDS = (serve, keys, ledger)
