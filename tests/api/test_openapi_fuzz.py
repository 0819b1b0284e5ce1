"""schemathesis against `/openapi.json` with a valid token: whatever it sends, no route answers
5xx, and every answer matches the documented schema. (Driven with hypothesis directly: the
schemathesis pytest plugin does not load under this pytest.)"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import RunningApp
from tests.e2e.payloads import evolution_update


def test_api_never_answers_5xx_and_matches_its_schema(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    running_app.hook("evolution", "main", evolution_update("F1", "READ"))
    running_app.wait_idle()
    # The token is given for the document's bearer scheme, not as a plain header: schemathesis
    # then also sends each authenticated case without it, and with a made-up one, expecting 401.
    config = SchemathesisConfig.from_dict(
        {"auth": {"openapi": {"bearer": {"bearer": running_app.token}}}}
    )
    schema = schemathesis.openapi.from_url(f"{running_app.base_url}/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every /v1 route, health and readiness
    statuses: set[tuple[str, int]] = set()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            # Every check but "schema-valid data is accepted": a well-formed but unknown cursor,
            # or a registration on a connection that does not exist, is rightly refused.
            response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
            statuses.add((case.operation.path, response.status_code))

        check()
    assert ("/v1/messages", 200) in statuses  # the token was sent: /v1 answered, not only 401
    assert any(path.startswith("/hooks/") for path, _ in statuses)  # the intake was fuzzed too
