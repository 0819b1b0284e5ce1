"""schemathesis against `/openapi.json` with a valid token: whatever it sends, no route answers
5xx, and every answer matches the documented schema. (Driven with hypothesis directly: the
schemathesis pytest plugin does not load under this pytest.)"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import RunningApp
from tests.e2e.payloads import evolution_update


def test_api_never_answers_5xx_and_matches_its_schema(running_app: RunningApp) -> None:
    running_app.add_connection("evolution", "main")
    running_app.hook("evolution", "main", evolution_update("F1", "READ"))
    running_app.wait_idle()
    schema = schemathesis.openapi.from_url(f"{running_app.base_url}/openapi.json")
    headers = {"authorization": f"Bearer {running_app.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every /v1 route, health and readiness
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            # Every check but "schema-valid data is accepted": a well-formed but unknown cursor,
            # or a registration on a connection that does not exist, is rightly refused.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
