"""`tidings campaign …` as a user types it: create from a CSV (a report line per bad row, exit
1), start, pause, resume, cancel, status; mistakes end in one line, never a traceback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import insert

from tests.test_cli_manage import ok, refused
from tidings.cli import main
from tidings.storage.db import Database
from tidings.storage.schema import campaigns

CSV = (
    "contact_ref,recipient,name,var1\n"
    "c1,+5531980000001,Ana,A-1\n"
    "c2,+5531980000002,Bea,B-2\n"
    "\n"
    "c3,oops,Caio,C-3\n"
)


def test_create_from_a_csv_then_start_pause_resume_cancel(
    migrated: CliRunner,
    tmp_path: Path,
) -> None:
    cli = migrated
    ok(cli, "connection", "add", "evolution", "evo", "--secret", "s",
       "--option", "api_url=http://127.0.0.1:9", "--option", "api_key=k")  # fmt: skip
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CSV)
    result = cli.invoke(main, ["campaign", "create", "spring", "--connection", "evo",
                               "--text", "Hi {{name}}: {{var1}}", "--rate", "600/min",
                               "--contacts", str(contacts)])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "2 contacts added" in result.output
    assert "line 5: recipient" in result.output  # the blank line 4 counts
    assert "1 of 3 rows not added" in result.output
    status = ok(cli, "campaign", "status", "spring")
    assert "draft on 'evo' (600/min)" in status and "2 pending" in status
    assert "is running" in ok(cli, "campaign", "start", "spring")
    assert "is paused" in ok(cli, "campaign", "pause", "spring")
    assert "cannot pause a campaign that is paused" in refused(cli, "campaign", "pause", "spring")
    assert "is running" in ok(cli, "campaign", "resume", "spring")
    assert "is cancelled" in ok(cli, "campaign", "cancel", "spring")


def test_mistakes_end_in_one_line(migrated: CliRunner, tmp_path: Path) -> None:
    cli = migrated
    ok(cli, "connection", "add", "evolution", "evo", "--secret", "s")
    assert "no connection named 'nope'" in refused(
        cli, "campaign", "create", "k", "--connection", "nope", "--text", "x"
    )
    assert (
        "600/min"
        in cli.invoke(
            main,
            ["campaign", "create", "k", "--connection", "evo", "--text", "x", "--rate", "fast"],
        ).output
    )
    assert "does not send a campaign 'ghost'" in refused(cli, "campaign", "start", "ghost")
    assert "cannot contain '/'" in refused(
        cli, "campaign", "create", "2026/june", "--connection", "evo", "--text", "x"
    )
    assert "no campaign with key 'ghost'" in refused(cli, "campaign", "status", "ghost")
    template = tmp_path / "template.json"
    template.write_text(json.dumps({"name": "order_update", "language": "en"}))
    assert "evolution sends text only" in refused(
        cli, "campaign", "create", "t", "--connection", "evo", "--template", str(template)
    )
    ok(cli, "connection", "add", "callbell", "cb", "--secret", "s")
    ok(cli, "campaign", "create", "t", "--connection", "cb", "--template", str(template))
    assert "no contacts yet" in refused(cli, "campaign", "start", "t")
    assert "must start with https://" in refused(
        cli, "connection", "add", "evolution", "nourl", "--secret", "s",
        "--option", "api_url=evo.example.com:8080", "--option", "api_key=k",
    )  # fmt: skip
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,name\n+5531980000001,Ana\n")
    assert "must name contact_ref, recipient" in refused(
        cli, "campaign", "add-contacts", "t", str(bad)
    )


def test_a_key_that_tracks_messages_sent_elsewhere_says_so(
    migrated: CliRunner, db: Database
) -> None:
    """A campaign named by registrations or webhooks is tracked, not sent: creating one to send
    under its key, or starting it, says why not."""
    cli = migrated
    ok(cli, "connection", "add", "callbell", "cb", "--secret", "s")
    with db.write() as conn:
        conn.execute(insert(campaigns).values(key="tracked", created_at=datetime.now(UTC)))
    assert "'tracked' already tracks messages sent elsewhere" in refused(
        cli, "campaign", "create", "tracked", "--connection", "cb", "--text", "x"
    )
    assert "'tracked' only tracks messages sent elsewhere" in refused(
        cli, "campaign", "start", "tracked"
    )


def test_a_variable_no_contact_has_is_refused_before_the_campaign_exists(
    migrated: CliRunner, tmp_path: Path
) -> None:
    cli = migrated
    ok(cli, "connection", "add", "callbell", "cb", "--secret", "s")
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CSV)
    line = refused(cli, "campaign", "create", "typo", "--connection", "cb",
                   "--text", "Hi {{nmae}}, {{var1}}", "--contacts", str(contacts))  # fmt: skip
    assert "the text uses {{nmae}}, which none of the contacts has" in line
    assert "no campaign with key 'typo'" in refused(cli, "campaign", "status", "typo")
