"""`agricredit train`, `agricredit promote` and `agricredit models list`."""

from __future__ import annotations

from pathlib import Path

import click

from features.registry import SOURCES
from features.runners import runner_for, scheduler_option


def _sources(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in chosen if s not in SOURCES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"unknown source(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SOURCES)}",
            param_hint="--sources",
        )
    return chosen


@click.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Data directory; its features/ are built first if missing.",
)
@click.option("--experiment", default=None, help="MLflow experiment (default: agricredit).")
@click.option(
    "--sources",
    default=",".join(SOURCES),
    show_default=True,
    help="Data sources the model may read, comma-separated.",
)
@click.option("--ablate", is_flag=True, help="Also train one nested run per source left out.")
@click.option("--no-register", is_flag=True, help="Track the run but register no version.")
@click.option(
    "--base-points", type=float, default=600.0, show_default=True, help="Score at the base odds."
)
@click.option(
    "--base-odds",
    type=float,
    default=50.0,
    show_default=True,
    help="Odds of repaying (to 1) that score the base points.",
)
@click.option(
    "--pdo", type=float, default=20.0, show_default=True, help="Points to double the odds."
)
@scheduler_option
def train(
    data_dir: Path,
    experiment: str | None,
    sources: str,
    ablate: bool,
    no_register: bool,
    base_points: float,
    base_odds: float,
    pdo: float,
    scheduler: str | None,
) -> None:
    """Train, calibrate and evaluate the PD model; track it in MLflow and register it.
    With --scheduler the booster grows on a Dask cluster (LightGBM's distributed learner)."""
    from training.runner import run_training
    from training.scaling import ScoreScaler

    try:
        scaler = ScoreScaler(base_points=base_points, base_odds=base_odds, pdo=pdo)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    with runner_for(scheduler) as runner:
        result = run_training(
            data_dir,
            sources=_sources(sources),
            experiment=experiment,
            ablate=ablate,
            register=not no_register,
            scaler=scaler,
            echo=click.echo,
            runner=runner,
        )
    if not result.checks_passed:
        raise SystemExit(1)


@click.command()
@click.argument("version", required=False)
@click.option(
    "--rollback", is_flag=True, help="Return to the champion before the current one instead."
)
def promote(version: str | None, rollback: bool) -> None:
    """Make VERSION (a number, or "latest") the champion if it passes the gate, scored
    against the current champion on the same test data; otherwise list what failed. Either
    way the signed gate report is recorded in MLflow. With --rollback, return to the
    previous champion (its files and gate record checked, the rollback recorded)."""
    from training.artifact import ModelIntegrityError
    from training.promotion import UngatedModelError
    from training.promotion import promote as run_promotion
    from training.promotion import rollback as run_rollback
    from training.registry import store_exists
    from training.signing import SigningKeyError

    if rollback == (version is not None):
        raise click.UsageError("give a VERSION to promote, or --rollback, not both")
    if not store_exists():
        raise click.ClickException(
            "no MLflow store here (and none was made): run from the project folder, or set "
            "AGRICREDIT_TRACKING_URI; `agricredit train --data DIR` makes one"
        )
    try:
        done = run_rollback() if rollback else run_promotion(str(version))
    except (LookupError, UngatedModelError, SigningKeyError, ModelIntegrityError) as exc:
        raise click.ClickException(str(exc)) from exc
    report = done.report
    for check in report.checks:
        mark = "pass" if check.passed else "FAIL"
        click.echo(f"  [{mark}] {check.name}: {check.detail}", err=not check.passed)
    if not done.promoted:
        click.echo(
            f"version {report.version} not promoted: {sum(not c.passed for c in report.checks)} "
            "check(s) failed (the report is recorded on the version)",
            err=True,
        )
        raise SystemExit(1)
    verb = "rolled back to" if rollback else "promoted"
    click.echo(f"{verb} version {report.version}: it is now the champion"
               + (f" (was version {done.previous})" if done.previous else ""))  # fmt: skip


@click.group()
def models() -> None:
    """Registered model versions."""


@models.command("list")
def list_models() -> None:
    """Versions with their aliases and test metrics, newest first."""
    from training.registry import get_client, list_versions, store_exists

    if not store_exists():
        click.echo("no MLflow store here (and none was made); run `agricredit train --data DIR`")
        return
    rows = list_versions(get_client())
    if not rows:
        click.echo("no registered versions; run `agricredit train --data DIR`")
        return
    click.echo(
        f"{'version':>7}  {'aliases':<10} {'test AUC':>8} {'ECE':>6} {'/oracle':>7} "
        f"{'baseline':>8}  run"
    )
    for r in rows:
        ratio = f"{r['auc_over_oracle']:.3f}" if "auc_over_oracle" in r else "-"
        click.echo(
            f"{r['version']:>7}  {','.join(r['aliases']) or '-':<10} "
            f"{r.get('test_auc', float('nan')):8.4f} {r.get('test_ece', float('nan')):6.4f} "
            f"{ratio:>7} {r.get('baseline_auc', float('nan')):8.4f}  {r['run_id']}"
        )


COMMANDS = (train, promote, models)
