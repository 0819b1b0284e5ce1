"""Logging in to the dashboard: sessions, CSRF, rate limiting, and what a page never shows."""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from tests.conftest import RunningApp
from tests.dashboard.conftest import EMAIL, PASSWORD, Dashboard, csrf_of, log_in
from tidings import user_admin
from tidings.cli import main
from tidings.storage.db import Database

PAGES = ["/", "/campaigns/any", "/messages/1", "/failures", "/receipts", "/receipts/1",
         "/deliveries", "/connections", "/connections/any", "/calls", "/team"]  # fmt: skip


@pytest.mark.parametrize("path", PAGES)
def test_no_session_sends_the_browser_to_login(running_app: RunningApp, path: str) -> None:
    answer = running_app.client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login?next=")


def test_login_returns_to_the_page_asked_for(running_app: RunningApp) -> None:
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url) as client:
        asked = client.get("/failures?campaign=x")
        target = asked.headers["location"]
        form = client.get(target)
        answer = client.post(
            "/login",
            data={
                "csrf": csrf_of(form.text),
                "email": EMAIL,
                "password": PASSWORD,
                "next": "/failures?campaign=x",
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/failures?campaign=x"


def test_the_session_cookie_is_httponly_and_lax(running_app: RunningApp) -> None:
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url) as client:
        answer = log_in(client)
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie"
                  and v.startswith("tidings_session="))  # fmt: skip
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; HTTPS gets Secure


def test_the_cookies_are_secure_behind_https(running_app: RunningApp) -> None:
    """Behind a proxy that says the browser came over HTTPS, both cookies are Secure (so a
    browser never sends them over plain HTTP)."""
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    https = {"x-forwarded-proto": "https"}
    with httpx.Client(base_url=running_app.base_url, headers=https) as client:
        form = client.get("/login")
        assert "Secure" in form.headers["set-cookie"]
        token = csrf_of(form.text)
        answer = client.post(
            "/login",
            data={"csrf": token, "email": EMAIL, "password": PASSWORD},
            headers={"cookie": f"tidings_login_csrf={token}"},
        )
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]


def test_a_wrong_password_gets_no_session(running_app: RunningApp) -> None:
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url) as client:
        answer = log_in(client, password="not the password")
        assert answer.status_code == 401
        assert "Wrong email or password" in answer.text
        assert "tidings_session" not in client.cookies
        assert client.get("/").status_code == 303


def test_an_unknown_email_is_answered_like_a_wrong_password(running_app: RunningApp) -> None:
    with httpx.Client(base_url=running_app.base_url) as client:
        answer = log_in(client, email="nobody@example.com")
    assert answer.status_code == 401
    assert "Wrong email or password" in answer.text


def test_login_without_its_csrf_token_is_refused(running_app: RunningApp) -> None:
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url) as client:
        answer = client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert answer.status_code == 403
    assert "tidings_session" not in answer.headers.get("set-cookie", "")


def test_repeated_failures_lock_the_email_for_a_while(running_app: RunningApp) -> None:
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url) as client:
        for _ in range(user_admin.MAX_FAILURES):
            assert log_in(client, password="guess-guess").status_code == 401
        locked = log_in(client)  # even the right password, while the window lasts
    assert locked.status_code == 429
    assert "try again in 15 minutes" in locked.text


def test_a_post_without_the_session_csrf_token_is_refused(dashboard: Dashboard) -> None:
    answer = dashboard.client.post("/logout", data={})
    assert answer.status_code == 403
    wrong = dashboard.client.post("/logout", data={"csrf": "forged"})
    assert wrong.status_code == 403
    assert dashboard.client.get("/").status_code == 200  # still logged in


def test_logout_ends_the_session_on_the_server(dashboard: Dashboard) -> None:
    token = dashboard.client.cookies["tidings_session"]
    answer = dashboard.post("/logout")
    assert answer.status_code == 303
    with httpx.Client(base_url=dashboard.app.base_url, cookies={"tidings_session": token}) as c:
        assert c.get("/").status_code == 303  # the old cookie opens nothing any more


def test_api_tokens_still_work_and_pages_do_not_take_them(dashboard: Dashboard) -> None:
    assert dashboard.app.api("GET", "/v1/campaigns").status_code == 200
    bearer = {"authorization": f"Bearer {dashboard.app.token}"}
    assert dashboard.app.client.get("/", headers=bearer).status_code == 303


def test_an_open_redirect_is_not_followed(running_app: RunningApp) -> None:
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url) as client:
        form = client.get("/login")
        answer = client.post(
            "/login",
            data={
                "csrf": csrf_of(form.text),
                "email": EMAIL,
                "password": PASSWORD,
                "next": "//evil.example",
            },
        )
    assert answer.headers["location"] == "/"


def test_user_create_from_the_command_line(migrated: CliRunner) -> None:
    made = migrated.invoke(main, ["user", "create", "Bo@Example.com", "--password", "long enough"])
    assert made.exit_code == 0, made.output
    again = migrated.invoke(main, ["user", "create", "bo@example.com", "--password", "x" * 9])
    assert again.exit_code == 1
    assert "already exists" in again.output
    short = migrated.invoke(main, ["user", "create", "cy@example.com", "--password", "short"])
    assert short.exit_code == 1
    assert "at least 8 characters" in short.output
    typo = migrated.invoke(main, ["user", "create", "cy.example.com", "--password", "x" * 9])
    assert typo.exit_code == 1
    assert "is not an email address" in typo.output and "Traceback" not in typo.output
    listed = migrated.invoke(main, ["user", "list"])
    assert "bo@example.com" in listed.output


def test_user_create_prompts_for_the_password(migrated: CliRunner) -> None:
    made = migrated.invoke(main, ["user", "create", "dee@example.com"],
                           input="long enough\nlong enough\n")  # fmt: skip
    assert made.exit_code == 0, made.output
    changed = migrated.invoke(main, ["user", "password", "dee@example.com"],
                              input="another one\nanother one\n")  # fmt: skip
    assert changed.exit_code == 0, changed.output
    missing = migrated.invoke(main, ["user", "password", "nobody@example.com", "--password",
                                     "long enough"])  # fmt: skip
    assert missing.exit_code == 1
    assert "no user" in missing.output


def test_user_create_without_a_store_says_so(cli: CliRunner) -> None:
    answer = cli.invoke(main, ["user", "create", "e@example.com", "--password", "long enough"])
    assert answer.exit_code == 1
    assert "tidings migrate" in answer.output


def test_the_login_page_says_how_to_make_the_first_user(running_app: RunningApp) -> None:
    page = running_app.client.get("/login")
    assert "tidings user create" in page.text


def test_a_failed_login_keeps_the_page_it_was_going_to(running_app: RunningApp) -> None:
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))
    with httpx.Client(base_url=running_app.base_url) as client:
        form = client.get(client.get("/failures?campaign=x").headers["location"])
        assert 'name="next" value="/failures?campaign=x"' in form.text
        target = "/failures?campaign=x"
        wrong = client.post(
            "/login",
            data={
                "csrf": csrf_of(form.text),
                "email": EMAIL,
                "password": "nope-nope",
                "next": target,
            },
        )
        assert 'name="next" value="/failures?campaign=x"' in wrong.text
        right = client.post(
            "/login",
            data={
                "csrf": csrf_of(wrong.text),
                "email": EMAIL,
                "password": PASSWORD,
                "next": target,
            },
        )
    assert right.headers["location"] == "/failures?campaign=x"


def test_guesses_sent_side_by_side_each_count(running_app: RunningApp) -> None:
    """Every attempt is written down before its password is checked, so parallel guesses
    cannot all slip under the limit."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import UTC, datetime

    user_admin.create(running_app.db, EMAIL, PASSWORD, datetime.now(UTC))

    def guess(n: int) -> int:
        with httpx.Client(base_url=running_app.base_url) as client:
            return log_in(client, password=f"guess-{n:04d}").status_code

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(guess, range(16)))
    assert answers.count(401) <= user_admin.MAX_FAILURES
    assert answers.count(429) >= 16 - user_admin.MAX_FAILURES


def test_the_limit_is_per_client_so_nobody_locks_out_someone_else(db: Database) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    user_admin.create(db, EMAIL, PASSWORD, now)
    for _ in range(user_admin.MAX_FAILURES):
        assert user_admin.log_in(db, EMAIL, "guess-guess", "203.0.113.9", now) is None
    with pytest.raises(user_admin.TooManyAttempts):
        user_admin.log_in(db, EMAIL, PASSWORD, "203.0.113.9", now)
    assert user_admin.log_in(db, EMAIL, PASSWORD, "198.51.100.7", now) is not None
    # One client guessing many accounts is slowed down too.
    for n in range(user_admin.MAX_CLIENT_FAILURES):
        user_admin.log_in(db, f"u{n}@example.com", "guess-guess", "192.0.2.1", now)
    with pytest.raises(user_admin.TooManyAttempts):
        user_admin.log_in(db, EMAIL, PASSWORD, "192.0.2.1", now)


def test_a_new_password_or_removing_the_user_ends_their_sessions(
    dashboard: Dashboard, cli: CliRunner
) -> None:
    assert dashboard.client.get("/").status_code == 200
    changed = cli.invoke(main, ["user", "password", EMAIL, "--password",
                                             "another long one"])  # fmt: skip
    assert changed.exit_code == 0, changed.output
    assert dashboard.client.get("/").status_code == 303
    assert log_in(dashboard.client, password="another long one").status_code == 303
    assert dashboard.client.get("/").status_code == 200
    removed = cli.invoke(main, ["user", "remove", EMAIL])
    assert removed.exit_code == 0, removed.output
    assert dashboard.client.get("/").status_code == 303
    assert cli.invoke(main, ["user", "remove", EMAIL]).exit_code == 1


def test_a_blocked_attempt_writes_nothing_and_old_failures_are_purged(db: Database) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from tidings.storage.schema import login_failures

    def rows() -> int:
        with db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(login_failures)).scalar_one())

    now = datetime.now(UTC)
    user_admin.create(db, EMAIL, PASSWORD, now)
    for _ in range(user_admin.MAX_FAILURES):
        assert user_admin.log_in(db, EMAIL, "guess-guess", "203.0.113.9", now) is None
    with pytest.raises(user_admin.TooManyAttempts):  # counted, then refused
        user_admin.log_in(db, EMAIL, "guess-guess", "203.0.113.9", now)
    before = rows()
    for _ in range(20):
        with pytest.raises(user_admin.TooManyAttempts):
            user_admin.log_in(db, EMAIL, "guess-guess", "203.0.113.9", now)
    assert rows() == before  # refused before anything was written
    later = now + user_admin.FAILURE_WINDOW + timedelta(seconds=1)
    assert user_admin.log_in(db, EMAIL, PASSWORD, "203.0.113.9", later) is not None
    assert rows() == 0  # the window's past is gone, and the good login cleared its own


def test_one_email_guessed_from_many_addresses_is_refused_too(db: Database) -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    user_admin.create(db, EMAIL, PASSWORD, now)
    for n in range(user_admin.MAX_EMAIL_FAILURES):
        user_admin.log_in(db, EMAIL, "guess-guess", f"198.51.{n // 250}.{n % 250}", now)
    with pytest.raises(user_admin.TooManyAttempts):
        user_admin.log_in(db, EMAIL, PASSWORD, "192.0.2.200", now)


def test_an_ipv6_network_counts_as_one_address() -> None:
    assert user_admin.client_key("2001:db8:1:2::a") == user_admin.client_key("2001:db8:1:2::b")
    assert user_admin.client_key("2001:db8:1:2::a") != user_admin.client_key("2001:db8:1:3::a")
    assert user_admin.client_key("203.0.113.9") == "203.0.113.9"
    # IPv4 passed on as IPv6 by a proxy: each address its own, not all of IPv4 in one /64
    assert user_admin.client_key("::ffff:203.0.113.9") == "203.0.113.9"
    assert user_admin.client_key("::ffff:198.51.100.7") != user_admin.client_key("::ffff:1.2.3.4")
    assert user_admin.client_key("unknown") == "unknown"
