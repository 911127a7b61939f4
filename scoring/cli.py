"""The `agricredit` entry point; it lives in scoring, the one package that may import all."""

from __future__ import annotations

import logging

import click

from features.cli import COMMANDS as FEATURE_COMMANDS
from scoring.service_cli import COMMANDS as SERVICE_COMMANDS
from training.cli import COMMANDS as TRAINING_COMMANDS


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="agricredit")
def main(verbose: int) -> None:
    """agricredit: order-backed input loans for smallholder farmers."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for command in (*FEATURE_COMMANDS, *TRAINING_COMMANDS, *SERVICE_COMMANDS):
    main.add_command(command)
