"""`agricredit simulate` and `agricredit data validate|load`: the features package's commands."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from features.errors import AgricreditError, TableValidationError
from features.problems import Problem

MAX_SHOWN = 50


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems[:MAX_SHOWN]:
        click.echo(f"  {problem}", err=True)
    if len(problems) > MAX_SHOWN:
        click.echo(f"  ... and {len(problems) - MAX_SHOWN} more", err=True)
    by_file = Counter(p.file for p in problems)
    summary = ", ".join(f"{f}: {n}" for f, n in by_file.most_common())
    click.echo(f"{len(problems)} problem(s) ({summary})", err=True)


@click.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Data directory to write (replaced whole, atomically).",
)
@click.option("--farmers", type=int, default=2_000, show_default=True)
@click.option("--seasons", type=int, default=4, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--counties", type=int, default=4, show_default=True)
@click.option(
    "--imagery-counties",
    type=int,
    default=None,
    help="Counties that get satellite scenes (default: all; 0: tables only).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate(
    out: Path,
    farmers: int,
    seasons: int,
    seed: int,
    counties: int,
    imagery_counties: int | None,
    quiet: bool,
) -> None:
    """Simulate a smallholder world and write it as input tables, fields and scenes."""
    from features.simulate.params import WorldParams
    from features.simulate.world import simulate_world

    try:
        params = WorldParams(
            farmers=farmers,
            seasons=seasons,
            seed=seed,
            counties=counties,
            imagery_counties=imagery_counties,
        )
    except AgricreditError as exc:
        raise click.BadParameter(str(exc)) from exc
    s = simulate_world(params, out, progress=not quiet)
    click.echo(
        f"wrote {s.out}: {s.farmers:,} farmers, {s.fields:,} fields, "
        f"{s.orders:,} orders, {s.contracts:,} contracts, {s.loans:,} loans, "
        f"{s.scenes:,} scenes"
    )
    click.echo(
        f"loan default rate {s.default_rate:.1%}; oracle AUC (true_pd vs outcome) "
        f"{s.oracle_auc:.3f}"
    )


@click.group()
def data() -> None:
    """Check and load input data directories."""


@data.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--no-rasters", is_flag=True, help="Skip opening and reading scene files.")
def validate(data_dir: Path, no_rasters: bool) -> None:
    """Check every table, field boundary and scene in DATA_DIR against its contract."""
    from features.validation import validate_dir

    report = validate_dir(data_dir, check_rasters=not no_rasters)
    if report.ok:
        rows = sum(len(t) for t in report.tables.values())
        click.echo(f"{data_dir}: valid ({len(report.tables)} tables, {rows:,} rows)")
        return
    click.echo(f"{data_dir}: invalid", err=True)
    _print_problems(report.problems)
    raise SystemExit(1)


@data.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--data",
    "target",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data/store"),
    show_default=True,
    help="Store to replace with the validated data.",
)
def load(source: Path, target: Path) -> None:
    """Validate SOURCE and install it as the store; on any problem write nothing."""
    from features.ingest import load_data_dir

    try:
        load_data_dir(source, target)
    except TableValidationError as exc:
        click.echo(f"{source}: invalid; {target} left unchanged", err=True)
        _print_problems(exc.problems)
        raise SystemExit(1) from exc
    click.echo(f"loaded {source} into {target}")


COMMANDS = (simulate, data)
