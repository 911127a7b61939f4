"""`agricredit serve`, `keys ...`, `ledger verify` and `preapprove`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from features.runners import runner_for, scheduler_option

if TYPE_CHECKING:  # the commands import what they run when they run (a fast --help)
    from scoring.ledger.keys import Role
    from scoring.ledger.repo import Ledger
    from scoring.preapproval.plan import MemberRequest

data_option = click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Store or data directory (default: AGRICREDIT_DATA_DIR or data/store).",
)


def _preflight(host: str, port: int) -> None:
    """What would otherwise fail only after every worker loaded its data and model, said
    at once and without a traceback: a busy port, no MLflow store here, no servable
    champion."""
    import socket

    from scoring.config import get_settings
    from training.artifact import ModelIntegrityError
    from training.config import get_training_settings
    from training.promotion import UngatedModelError, verify_gate
    from training.registry import get_client, load_version, store_exists
    from training.signing import SigningKey, SigningKeyError

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port} ({exc.strerror}): another server holds it; "
                "stop it or pass --port"
            ) from exc
    training = get_training_settings()
    if not store_exists(training):
        raise click.ClickException(
            f"no MLflow store at {training.tracking_uri} (run from the project folder, or set "
            "AGRICREDIT_TRACKING_URI); train and promote a model first"
        )
    ref = get_settings().model_ref
    try:
        loaded = load_version(get_client(training), ref)
        verify_gate(
            loaded.version, loaded.bundle.sha256, SigningKey.read(training.signing_key_path)
        )
    except (LookupError, UngatedModelError, ModelIntegrityError, SigningKeyError) as exc:
        raise click.ClickException(f"cannot serve {ref!r}: {exc}") from exc


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@data_option
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
@click.option(
    "--reuse-port",
    is_flag=True,
    help="With several workers, let each listen on the port itself (SO_REUSEPORT) instead "
    "of the supervisor dealing connections in turn; for comparison (docs/performance.md).",
)
@click.option(
    "--pin-cpus/--no-pin-cpus",
    default=True,
    show_default=True,
    help="With several workers and a CPU for each, keep each worker on its own CPU.",
)
def serve(
    host: str,
    port: int,
    data_dir: Path | None,
    workers: int,
    access_log: bool,
    reuse_port: bool,
    pin_cpus: bool,
) -> None:
    """Serve the decision API (uvicorn) with the champion model."""
    import uvicorn

    from scoring.config import get_settings

    if data_dir is not None:
        # workers read settings themselves; a settings read before this would serve the default
        os.environ["AGRICREDIT_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()
    _preflight(host, port)

    from scoring.http_protocol import ProblemHttpProtocol
    from scoring.workers import SERVED_APP, run_reuse_port_workers, run_workers

    if workers > 1:  # the supervisor deals connections to the workers in turn
        run = run_reuse_port_workers if reuse_port else run_workers
        raise SystemExit(run(host, port, workers, access_log=access_log, pin_cpus=pin_cpus))
    uvicorn.run(
        SERVED_APP,
        factory=True,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log,
        http=ProblemHttpProtocol,
    )


@contextmanager
def _ledger(*, create_key: bool = True) -> Iterator[Ledger]:
    from scoring.config import get_settings
    from scoring.ledger.repo import Ledger
    from training.signing import SigningKeyError

    try:
        ledger = Ledger.open(get_settings(), create_key=create_key)
    except SigningKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        ledger.migrate()
        yield ledger
    finally:
        ledger.close()


@click.group()
def keys() -> None:
    """API keys: create (shown once), revoke, list."""


@keys.command("create")
@click.option("--role", type=click.Choice(["lender", "coop", "scientist", "data"]), required=True)
@click.option("--coop", "coop_id", default=None, help="The co-op a coop key belongs to.")
@click.option("--name", default="", help="Who the key is for.")
@click.option(
    "--org",
    "org_id",
    default=None,
    help="The organisation the key belongs to (its org_id); without it, a new organisation.",
)
def create_key_command(role: Role, coop_id: str | None, name: str, org_id: str | None) -> None:
    """Create a key and print it once; only its hash is stored. Keys of one organisation
    share its decisions, jobs and Idempotency-Keys."""
    from scoring.ledger.keys import create_key

    try:
        with _ledger() as book:
            key, secret = create_key(
                book.keys, role=role, name=name or role, coop_id=coop_id, org_id=org_id
            )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(f"key_id {key.key_id} org {key.org_id}\n{secret}\n{SHOWN_ONCE}")


SHOWN_ONCE = "(store the key now: it cannot be shown again)"


@keys.command("rotate")
@click.argument("key_id")
@click.option(
    "--keep-old", is_flag=True, help="Leave the old key working (revoke it once clients moved)."
)
def rotate_key_command(key_id: str, keep_old: bool) -> None:
    """A new key for the same organisation, role and co-op; the old one is revoked. The
    organisation's past decisions and Idempotency-Keys stay with the new key."""
    from scoring.ledger.keys import rotate_key

    try:
        with _ledger() as book:
            key, secret = rotate_key(book.keys, key_id, keep_old=keep_old)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="KEY_ID") from exc
    old = "kept active" if keep_old else "revoked"
    click.echo(f"key_id {key.key_id} org {key.org_id}\n{secret}\n{SHOWN_ONCE}")
    click.echo(f"old key {key_id} {old}")


@keys.command("revoke")
@click.argument("key_id")
def revoke_key_command(key_id: str) -> None:
    """Revoke a key by its key_id."""
    with _ledger() as book:
        revoked = book.keys.revoke(key_id)
    if not revoked:
        click.echo(f"no active key {key_id}", err=True)
        raise SystemExit(1)
    click.echo(f"revoked {key_id}")


@keys.command("list")
def list_keys_command() -> None:
    """Keys with organisation, role, co-op and state (never the secret)."""
    with _ledger() as book:
        rows = book.keys.list()
    for k in rows:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        click.echo(
            f"{k.key_id}  {k.org_id:<20} {k.role:<9} {k.coop_id or '-':<8} {k.name:<20} {state}"
        )


@click.group()
def ledger() -> None:
    """The decision ledger."""


@ledger.command("verify")
def verify_ledger() -> None:
    """Walk the hash chain, every row's MAC and the end against the signed checkpoint;
    exit 1 on any edited, deleted, reordered, forged or re-hashed row, or a lost tail."""
    with _ledger(create_key=False) as book:  # verifying with a new key would prove nothing
        report = book.verify()
        where = book.url
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    if not report.ok:
        click.echo(
            f"ledger broken: {len(report.problems)} problem(s) in {report.rows} rows", err=True
        )
        raise SystemExit(1)
    if report.rows == 0:
        click.echo(f"the ledger at {where} is empty: no decision has been recorded yet")
        return
    click.echo(
        f"ledger intact: {report.rows} rows, every link and MAC verified, head {report.head}"
    )


@click.command()
@click.option("--coop", "coop_id", required=True, help="The co-op whose members to pre-approve.")
@click.option("--contract", "contract_id", required=True, help="The co-op's purchase contract.")
@click.option(
    "--members",
    "members_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="CSV with farmer_id and, optionally, budget_minor and share (default: every member).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every member's result here as CSV.",
)
@data_option
@scheduler_option
def preapprove(
    coop_id: str,
    contract_id: str,
    members_file: Path | None,
    out: Path | None,
    data_dir: Path | None,
    scheduler: str | None,
) -> None:
    """Pre-approve a co-op's members under a contract, as the API does, written to the
    ledger under the operator's name. With --scheduler the members are decided on a Dask
    cluster whose workers see the same data directory and model registry."""
    from tqdm import tqdm

    from scoring.config import Settings
    from scoring.decide.state import ServiceState
    from scoring.errors import ServiceError
    from scoring.ledger.jobs import JobStore
    from scoring.preapproval.members import results_csv
    from scoring.preapproval.plan import resolve_members
    from scoring.preapproval.runner import OPERATOR_KEY, run_job
    from scoring.runtime import settle_after_loading

    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    listed = None if members_file is None else _read_members(members_file)
    state = ServiceState.build(settings)
    settle_after_loading()
    try:
        chosen, _ = resolve_members(
            state.source, coop_id=coop_id, contract_id=contract_id, members=listed
        )
        store = JobStore(state.ledger, lease_seconds=settings.preapproval_lease_seconds)
        job, _ = store.create(
            key_id=OPERATOR_KEY,
            org_id=OPERATOR_KEY,
            idempotency_key=None,
            coop_id=coop_id,
            contract_id=contract_id,
            request={
                "contract_id": contract_id,
                "members": None if listed is None else [vars(m) for m in listed],
                "as_of": state.as_of().isoformat(),
                "chunk_members": settings.preapproval_chunk_members,
            },
            total=len(chosen),
            run_now=True,
        )
        with (
            runner_for(scheduler) as runner,
            tqdm(total=len(chosen), unit="member", desc="pre-approval") as bar,
        ):
            results = run_job(
                job,
                state,
                store,
                chunk=settings.preapproval_chunk_members,
                on_chunk=lambda done, _total: bar.update(done - bar.n),
                runner=runner,
            )
    except ServiceError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        state.ledger.close()
    done = [r for r in results if r["status"] == "evaluated"]
    approved = [r for r in done if r["decision"] == "approve"]
    click.echo(
        f"job {job.job_id}: {len(done)} members decided ({len(approved)} approved, "
        f"{sum(r['decision'] == 'refer' for r in done)} referred, "
        f"{sum(r['decision'] == 'decline' for r in done)} declined), "
        f"{len(results) - len(done)} not members; pre-approved "
        f"{sum(r['preapproved_limit_minor'] for r in approved):,} minor units"
    )
    if out is not None:
        out.write_text(results_csv(results))
        click.echo(f"wrote {out}")


def _read_members(path: Path) -> list[MemberRequest]:
    """Members from a CSV file, every problem named by row and column."""
    import csv

    from scoring.preapproval.plan import MemberRequest

    members, problems = [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if "farmer_id" not in (reader.fieldnames or []):
            raise click.BadParameter(f"{path}: needs a farmer_id column", param_hint="--members")
        for row_no, row in enumerate(reader, start=2):
            values: dict[str, Any] = {"farmer_id": (row.get("farmer_id") or "").strip()}
            if not values["farmer_id"]:
                problems.append(f"{path}:{row_no}: farmer_id is empty")
            for column, kind, noun in (
                ("budget_minor", int, "whole number of minor units"),
                ("share", float, "number between 0 and 1"),
            ):
                text = (row.get(column) or "").strip()
                if not text:
                    continue
                try:
                    values[column] = kind(text)
                except ValueError:
                    problems.append(f"{path}:{row_no}: {column} {text!r} is not a {noun}")
                    continue
                if values[column] < 0 or (column == "budget_minor" and values[column] == 0):
                    problems.append(f"{path}:{row_no}: {column} must be positive; got {text}")
            members.append(MemberRequest(**values))
    if problems:
        raise click.BadParameter("\n".join(problems), param_hint="--members")
    return members


@click.group()
def audit() -> None:
    """Audits of what the service decides."""


@audit.command("decisions")
@data_option
@click.option(
    "--version",
    "ref",
    default="champion",
    show_default=True,
    help="The model version (number or alias) whose test season is decided again.",
)
def audit_decisions(data_dir: Path | None, ref: str) -> None:
    """Decide the version's test-season applications again, each as of its application
    time, with the policy; print approve / refer / decline shares by county, gender and age
    band, and add them to the version's model card and run in MLflow."""
    import pandas as pd
    from tqdm import tqdm

    from scoring.config import get_settings
    from scoring.decide.audit import decide_again, decision_rates, rates_markdown
    from scoring.decide.data import FeatureSource
    from scoring.decide.model_store import ModelStore
    from scoring.decide.policy import load_policy
    from training.promotion import evaluation_matrix
    from training.registry import get_client

    settings = get_settings()
    data = data_dir or settings.data_dir
    try:
        served = ModelStore(ref).load()
    except Exception as exc:  # ungated, changed, unknown: said, not traced
        raise click.ClickException(f"cannot audit {ref!r}: {exc}") from exc
    client = get_client()
    version = client.get_model_version(served.name, served.version)
    rows = evaluation_matrix(version)
    if rows is None:
        raise click.ClickException(f"version {served.version} logged no test season to audit")
    loans = pd.read_parquet(Path(data) / "loans.parquet")
    loans = loans[loans["loan_id"].isin(set(rows["application_id"]))]
    source = FeatureSource.load(data)
    policy = load_policy(settings.policy_path)
    with tqdm(total=len(loans), unit="application", desc="deciding again") as bar:
        decided = decide_again(loans, source=source, model=served.predictor, policy=policy,
                               progress=bar.update)  # fmt: skip
    farmers = pd.read_parquet(Path(data) / "farmers.parquet")
    rates = decision_rates(decided, loans, farmers)
    section = rates_markdown(rates, version=served.version, policy=policy)
    click.echo(section)
    client.log_text(served.run_id, rates.to_csv(index=False), "decision_fairness.csv")
    card = ""
    try:
        card = client.download_artifacts(served.run_id, "model_card.md")
        card = Path(card).read_text().split("## Decisions by group")[0].rstrip() + "\n\n"
    except Exception:  # a version logged without a card: the section is the card
        card = ""
    client.log_text(served.run_id, card + section, "model_card.md")


COMMANDS = (audit, serve, keys, ledger, preapprove)
