"""The `tidings` command. It translates arguments into calls and prints results; no logic here.

One module per group of commands; this one assembles them under `main`.
"""

from __future__ import annotations

import click

from tidings import __version__
from tidings.cli.backfill import backfill
from tidings.cli.campaigns import campaign
from tidings.cli.common import TidingsGroup, settings
from tidings.cli.connections import connection
from tidings.cli.doctor import doctor
from tidings.cli.imports import import_
from tidings.cli.outbound import deliveries_group, subscription
from tidings.cli.server import beat, serve, worker
from tidings.cli.store import migrate, migrate_data, recount, replay, vacuum
from tidings.cli.tokens import token
from tidings.cli.users import user
from tidings.logging import configure_logging

__all__ = ["main"]


@click.group(cls=TidingsGroup)
@click.version_option(__version__, prog_name="tidings")
def main() -> None:
    """tidings: what became of every message you sent.

    Configuration comes from TIDINGS_* environment variables (or the TOML file named by
    TIDINGS_CONFIG); TIDINGS_DATABASE_URL defaults to sqlite:///tidings.db.
    """
    config = settings()
    configure_logging(config.log_level, config.log_json, access_log=config.access_log)


for command in (
    serve,
    worker,
    beat,
    migrate,
    migrate_data,
    connection,
    token,
    replay,
    recount,
    vacuum,
):
    main.add_command(command)
main.add_command(doctor)
main.add_command(backfill)
main.add_command(import_)
main.add_command(subscription)
main.add_command(deliveries_group)
main.add_command(campaign)
main.add_command(user)
