"""`tidings subscription …` and `tidings deliveries …`: what an operator types and reads, and
one line (exit 1) for every mistake."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from tests.outbound.conftest import Outbound
from tests.outbound.receiver import Receiver
from tests.test_cli_manage import _last, ok, refused
from tidings.cli import main


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, outbound: Outbound) -> CliRunner:
    monkeypatch.setenv("TIDINGS_DATABASE_URL", outbound.settings.database_url)
    monkeypatch.setenv("TIDINGS_OUTBOUND_ALLOWED_HOSTS", "127.0.0.1")
    for name in ("TIDINGS_BROKER_URL", "TIDINGS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_add_list_rotate_disable_enable_remove(cli: CliRunner, receiver: Receiver):
    out = ok(
        cli, "subscription", "add", receiver.url,
        "--events", "message.delivered,message.read", "--connection", "cb",
        "--campaign", "spring", "--description", "CRM", "--include-contact",
    )  # fmt: skip
    secret = _last(out)
    assert secret.startswith("whsec_") and "subscription 1 added" in out
    listed = ok(cli, "subscription", "list")
    assert "message.delivered,message.read" in listed and "connection cb" in listed
    assert "campaign spring" in listed and "CRM" in listed and secret not in listed
    rotated = ok(cli, "subscription", "rotate", "1", "--overlap", "60")
    assert _last(rotated).startswith("whsec_") and _last(rotated) != secret
    assert "the old secret signs too until" in rotated
    ok(cli, "subscription", "disable", "1")
    assert "disabled (disabled by an operator)" in ok(cli, "subscription", "list")
    ok(cli, "subscription", "enable", "1")
    assert "\tenabled" in ok(cli, "subscription", "list")
    assert "removed" in ok(cli, "subscription", "remove", "1")
    assert "no subscriptions yet" in ok(cli, "subscription", "list")


def test_mistakes_are_one_line(cli: CliRunner, receiver: Receiver):
    line = refused(cli, "subscription", "add", "http://10.0.0.7/hooks")
    assert "10.0.0.7 is a private address" in line
    assert "TIDINGS_OUTBOUND_ALLOWED_HOSTS" in line
    assert "unknown event type 'message.seen'" in refused(
        cli, "subscription", "add", receiver.url, "--events", "message.seen"
    )
    assert "no connection named 'nope'" in refused(
        cli, "subscription", "add", receiver.url, "--connection", "nope"
    )
    assert "no subscription with id 9" in refused(cli, "subscription", "remove", "9")
    assert "no subscription with id 9" in refused(cli, "subscription", "rotate", "9")
    assert "no delivery with id 5" in refused(cli, "deliveries", "replay", "5")
    assert "no subscription with id 9" in refused(
        cli, "deliveries", "replay", "--subscription", "9"
    )
    usage = cli.invoke(main, ["deliveries", "replay"])
    assert usage.exit_code == 2 and "name deliveries" in usage.output
    bad_date = cli.invoke(main, ["deliveries", "replay", "--since", "yesterday"])
    assert bad_date.exit_code == 2 and "is not a date" in bad_date.output


def test_replay_dead_deliveries_since_a_date(
    cli: CliRunner, outbound: Outbound, receiver: Receiver
):
    secret = _last(ok(cli, "subscription", "add", receiver.url))
    receiver.secrets.append(secret)
    settings = outbound.settings.model_copy(update={"outbound_retry_schedule": "0"})
    receiver.behaviour.fail_next = 2  # the first try and its one retry
    outbound.event("m1", "delivered")
    outbound.drain(settings)
    outbound.event("m2", "delivered")
    outbound.drain(settings)
    assert [d.status for d in outbound.deliveries()] == ["dead", "delivered"]
    listed = ok(cli, "deliveries", "list", "--status", "dead")
    assert "dead\tattempts 2\tlast 500" in listed
    out = ok(cli, "deliveries", "replay", "--status", "dead")  # as README writes it
    assert out.startswith("1 delivery queued")
    outbound.clock.to(datetime.now(UTC))  # the command queued them for its own "now"
    outbound.drain(settings)
    assert [d.status for d in outbound.deliveries()] == ["delivered", "delivered"]
    assert len(receiver.applied()) == 2
    again = ok(cli, "deliveries", "replay", "1", "2")
    assert again.startswith("2 deliveries queued")
    outbound.clock.to(datetime.now(UTC))
    outbound.drain(settings)
    assert len(receiver.received) == 4 and len(receiver.applied()) == 2
