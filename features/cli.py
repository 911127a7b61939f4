"""`agricredit simulate` and `agricredit data validate|load`: the features package's commands."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from features.errors import AgricreditError, TableValidationError
from features.problems import Problem
from features.runners import runner_for, scheduler_option

if TYPE_CHECKING:
    import pandas as pd

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
@click.option(
    "--members-per-coop",
    type=int,
    default=None,
    help="Mean co-op size (default 60); co-ops stay within one county.",
)
@click.option(
    "--coop-member-share",
    type=float,
    default=None,
    help="Share of farmers who belong to a co-op (default 0.55).",
)
@click.option(
    "--until",
    default=None,
    metavar="now|INSTANT",
    help="Extract the world at this instant (ISO 8601, UTC unless stated, or 'now'): its "
    "seasons are the ones before, the last perhaps still maturing, the next being signed. "
    "Default: 28 February after the last loan season, the seasons from 2022.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate(
    out: Path,
    farmers: int,
    seasons: int,
    seed: int,
    counties: int,
    imagery_counties: int | None,
    members_per_coop: int | None,
    coop_member_share: float | None,
    until: str | None,
    quiet: bool,
) -> None:
    """Simulate a smallholder world and write it as input tables, fields and scenes."""
    from features.simulate.params import WorldParams
    from features.simulate.world import simulate_world

    try:
        optional: dict[str, Any] = {}  # the parameters' own defaults unless given
        if members_per_coop is not None:
            optional["members_per_coop"] = members_per_coop
        if coop_member_share is not None:
            optional["coop_member_share"] = coop_member_share
        given = dict(farmers=farmers, seasons=seasons, seed=seed, counties=counties,
                     imagery_counties=imagery_counties, **optional)  # fmt: skip
        if until is None:
            params = WorldParams(**given)
        else:
            params = WorldParams.ending(_instant(until), **given)
    except AgricreditError as exc:
        raise click.BadParameter(str(exc)) from exc
    s = simulate_world(params, out, progress=not quiet)
    click.echo(
        f"wrote {s.out}: {s.farmers:,} farmers, {s.fields:,} fields, "
        f"{s.orders:,} orders, {s.contracts:,} contracts, {s.loans:,} loans, "
        f"{s.scenes:,} scenes, extracted at {s.extracted_at}"
    )
    click.echo(
        f"loan default rate {s.default_rate:.1%}; oracle AUC (true_pd vs outcome) "
        f"{s.oracle_auc:.3f}"
    )


def _instant(text: str) -> pd.Timestamp:
    """'now' (to the minute) or an ISO 8601 instant, UTC unless it says otherwise."""
    import pandas as pd

    from features import clock

    if text == "now":
        return clock.now().floor("min")
    try:
        return pd.Timestamp(text)  # WorldParams.ending reads a zoneless instant as UTC
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r} is not an instant; give 'now' or ISO 8601, e.g. 2026-12-02T09:30",
            param_hint="--until",
        ) from exc


def store_option(help_text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """`--data`: the store a command works on (default data/store)."""
    return click.option("--data", "target", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("data/store"), show_default=True, help=help_text)  # fmt: skip


def _store_table(_ctx: click.Context, _param: click.Parameter, table: str | None) -> str | None:
    from features.tables import TABLES_BY_NAME

    if table is not None and table not in TABLES_BY_NAME:
        raise click.BadParameter(f"no table {table!r}; tables: {', '.join(TABLES_BY_NAME)}")
    return table


def _existing_store(target: Path) -> None:
    from features.arrival_log import ArrivalLog

    if not ArrivalLog.present(target):
        raise click.ClickException(f"{target} holds no store yet: `agricredit data load` a "
                                   "first export into it, or pass --data")  # fmt: skip


@click.group()
def data() -> None:
    """Check and load input data directories."""


@data.command()
@click.argument("data_dir", type=click.Path(path_type=Path))
@click.option("--no-rasters", is_flag=True, help="Skip opening and reading scene files.")
def validate(data_dir: Path, no_rasters: bool) -> None:
    """Check every table, field boundary and scene in DATA_DIR against its declaration
    (a store's arrival log, or a directory of table files)."""
    from features.arrival_log import ArrivalLog
    from features.validation import ValidationReport, validate_dir

    if ArrivalLog.present(data_dir):
        report = ValidationReport(data_dir)
        try:
            report.tables = ArrivalLog(data_dir).tables()
        except TableValidationError as exc:
            report.problems = exc.problems
        if report.ok and not no_rasters:
            from features.satellite.scenes import check_scene_files

            report.problems = check_scene_files(data_dir, report.tables["scenes"], "log/scenes")
    else:
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
@store_option("Store to replace with the validated data.")
def load(source: Path, target: Path) -> None:
    """Validate SOURCE and install it as the store; on any problem write nothing."""
    from features.ingest import load_data_dir

    try:
        report = load_data_dir(source, target)
    except TableValidationError as exc:
        click.echo(f"{source}: invalid; {target} left unchanged", err=True)
        _print_problems(exc.problems)
        raise SystemExit(1) from exc
    rows = sum(len(t) for t in report.tables.values())
    click.echo(f"{source}: valid ({len(report.tables)} tables, {rows:,} rows); loaded into "
               f"{target} as the first commits of its arrival log")  # fmt: skip


@data.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--table", required=True, callback=_store_table, help="The input table the rows belong to."
)
@store_option("The store whose arrival log takes the batch.")
@click.option("--batch-id", default=None, help="The batch's id (default: the file's digest).")
def append(path: Path, table: str, target: Path, batch_id: str | None) -> None:
    """Append PATH (CSV, Parquet or JSON lines; fields as a GeoJSON, GeoPackage, shapefile
    or FlatGeobuf file; scenes as rows naming their GeoTIFFs) to TABLE as one batch:
    validated against the store, committed whole, or nothing written."""
    from features.ingest import append_file

    _existing_store(target)
    try:
        commit = append_file(target, table, path, batch_id=batch_id,
                             progress=lambda line: click.echo(line, err=True))  # fmt: skip
    except TableValidationError as exc:
        click.echo(f"{path}: refused; nothing was written to {table}", err=True)
        _print_problems(exc.problems)
        raise SystemExit(1) from exc
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    if commit.written:
        at = commit.recorded_at.isoformat()
        click.echo(f"committed {commit.rows:,} rows to {table} as version {commit.version} "
                   f"(batch {commit.batch_id}, recorded at {at})")  # fmt: skip
    else:
        click.echo(f"batch {commit.batch_id} was committed before (version {commit.version}, "
                   f"{commit.rows:,} rows): nothing written")  # fmt: skip


@data.command()
@store_option("The store whose arrival log to show.")
@click.option("--table", default=None, callback=_store_table, help="Only this table.")
@click.option("--last", type=int, default=10, show_default=True, help="Commits per table.")
def commits(target: Path, table: str | None, last: int) -> None:
    """What arrived when: each table's latest commits (version, time, rows, batch, source)."""
    from features.arrival_log import ArrivalLog
    from features.tables import TABLES_BY_NAME

    _existing_store(target)
    log = ArrivalLog(target)
    shown = [table] if table is not None else list(TABLES_BY_NAME)
    rows = [c for name in shown for c in log.commits(name, last=last)]
    click.echo(
        f"{'table':<14} {'version':>7}  {'committed at (UTC)':<19} {'rows':>10}  batch / source"
    )
    for c in sorted(rows, key=lambda c: c.committed_at, reverse=True):
        click.echo(f"{c.table:<14} {c.version:>7}  {c.committed_at:%Y-%m-%d %H:%M:%S} "
                   f"{c.rows:>10,}  {c.batch_id} / {c.source}")  # fmt: skip


@click.group("features")
def features_group() -> None:
    """Build and describe the model's features."""


@features_group.command("list")
@click.option(
    "--source",
    type=click.Choice(["orders", "contracts", "satellite", "history"]),
    default=None,
    help="Only this data source.",
)
@click.option("--reasons", is_flag=True, help="Show the reason text a declined farmer sees.")
def list_features(source: str | None, reasons: bool) -> None:
    """Print the feature catalogue: name, source, unit, risk direction and meaning."""
    from features.registry import FEATURES, QUALITY_FLAGS

    arrows = {1: "+ risk", -1: "- risk", 0: "free"}
    rows = [f for f in FEATURES if source is None or f.source == source]
    width = max(len(f.name) for f in rows)
    for f in rows:
        text = f.reason if reasons else f.description
        click.echo(
            f"{f.name:<{width}}  {f.source:<9}  {arrows[f.direction]:<6}  {f.unit:<14}  {text}"
        )
    flags = [q for q in QUALITY_FLAGS if source is None or q.source == source]
    click.echo(f"\n{len(rows)} features; data-quality flags carried with every row:")
    for q in flags:
        click.echo(f"  {q.name:<{width - 2}}  {q.source:<9}  {q.description}")


@features_group.command("build")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Data directory (tables, fields.geojson, scenes).",
)
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Build as known at this UTC time, e.g. 2025-03-01T00:00Z (default: latest data).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output directory (default DATA/features), replaced whole.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
@scheduler_option
def build(
    data_dir: Path, as_of: str | None, out: Path | None, quiet: bool, scheduler: str | None
) -> None:
    """Write the field index series, the training matrix and the farmer snapshot."""
    import pandas as pd

    from features.feature_store import write_feature_store

    if as_of is not None:
        try:
            when = pd.Timestamp(as_of)
        except ValueError as exc:
            raise click.BadParameter(
                f"{as_of!r} is not a time ({exc})", param_hint="--as-of"
            ) from exc
        if when.tzinfo is None:
            raise click.BadParameter(
                f"{as_of!r} has no timezone; write it in UTC, e.g. 2025-03-01T00:00Z",
                param_hint="--as-of",
            )
    try:
        with runner_for(scheduler) as runner:
            s = write_feature_store(
                data_dir, out=out, as_of=as_of, progress=not quiet, runner=runner
            )
    except TableValidationError as exc:
        click.echo(f"{data_dir}: invalid; no features written", err=True)
        _print_problems(exc.problems)
        raise SystemExit(1) from exc
    click.echo(
        f"wrote {s.out} as of {s.as_of:%Y-%m-%d %H:%M:%S} UTC in {s.seconds:.1f} s: "
        f"{s.series_rows:,} field-scene rows, {s.training_rows:,} loans "
        f"({s.labelled_rows:,} with a known outcome), {s.snapshot_rows:,} farmer snapshots"
    )


COMMANDS = (simulate, data, features_group)
