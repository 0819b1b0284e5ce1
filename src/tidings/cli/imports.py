"""`tidings import …`: the business's own data, read from files. Today: leads from CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import click

from tidings.cli.common import now, settings, store
from tidings.domain.errors import Invalid
from tidings.domain.leads import Lead, lead
from tidings.domain.recipients import REGIONS
from tidings.storage import leads
from tidings.storage.db import Database

__all__ = ["import_"]

# Leads saved per transaction: SQLite's write lock, which the intake needs, is held briefly.
CHUNK = 200


@click.group("import")
def import_() -> None:
    """Import the business's own data (leads)."""


@dataclass
class _Tally:
    rows: int = 0
    created: int = 0
    updated: int = 0
    matched: int = 0


@import_.command("leads")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--region",
    help="Region of phone numbers written without a country code, e.g. IN or PL "
    "[default: TIDINGS_DEFAULT_REGION]",
)
def import_leads(file: Path, region: str | None) -> None:
    """Create or update leads from a CSV file: external_id,name,owner,phone[,phone...].

    A header row is optional. Each lead's phones become exactly those of its row, and calls
    waiting for any of them are attached to it at once. Importing the same file again
    changes nothing. Rows that cannot be imported are listed with why; the others are
    imported, and the command then exits 1."""
    config = settings()
    chosen = (region or config.default_region or "").strip().upper() or None
    if chosen is not None and chosen not in REGIONS:
        raise click.BadParameter(
            f"{region!r} is not a region code (e.g. IN, PL)", param_hint="--region"
        )
    rows = _rows(file)
    if not rows:
        raise click.ClickException(f"{file} has no leads (expected external_id,name,owner,phone)")
    errors: list[str] = []
    tally = _Tally()
    with store(config) as db:
        pending: list[Lead] = []
        with click.progressbar(
            rows, length=len(rows), label="importing leads", show_pos=True
        ) as bar:
            for line, cells in bar:
                try:
                    pending.append(_lead(cells, chosen))
                except Invalid as error:
                    errors.append(f"row {line}: {error}")
                if len(pending) >= CHUNK:
                    _save(db, pending, tally)
                    pending = []
            _save(db, pending, tally)
    click.echo(
        f"{tally.rows} leads imported ({tally.created} new, {tally.updated} existing); "
        f"{tally.matched} waiting calls matched"
    )
    if errors:
        for problem in errors:
            click.echo(problem, err=True)
        click.echo(f"{len(errors)} of {len(rows)} rows failed", err=True)
        raise SystemExit(1)


def _rows(file: Path) -> list[tuple[int, list[str]]]:
    """The data rows with their line numbers (blank lines and a header left out)."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException(f"{file} is not UTF-8 text (save the CSV as UTF-8)") from None
    except OSError as error:
        raise click.ClickException(f"{file}: {error.strerror}") from None
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    found: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if not found and cells[0].strip().casefold() == "external_id":
                continue  # the header
            found.append((reader.line_num, cells))
    except csv.Error as error:
        raise click.ClickException(f"{file}, line {reader.line_num}: {error}") from None
    return found


def _lead(cells: list[str], region: str | None) -> Lead:
    padded = [*cells, "", "", ""]
    return lead(padded[0], padded[1], padded[2], cells[3:], region)


def _save(db: Database, given: list[Lead], tally: _Tally) -> None:
    if not given:
        return
    at = now()
    saved = db.apply(lambda reader, writes: leads.save_leads(reader, writes, given, at))
    tally.rows += len(saved)
    tally.created += sum(s.created for s in saved)
    tally.updated += sum(not s.created for s in saved)
    tally.matched += sum(s.matched_calls for s in saved)
