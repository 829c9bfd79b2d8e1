"""schemathesis against the OpenAPI document the controller serves, on SQLite and PostgreSQL.

Every operation gets generated requests (valid and invalid), then the state machine chains them
through the links schemathesis infers (a job submitted, then read, paused, retried, deleted...).
Over all of it: no response 5xx, every response in the documented status codes, content type and
body schema. Hypothesis runs derandomized, so a failure reproduces on the next run; the requests
are counted, and the test fails if fewer were sent than the run asks of its database: at least
5,000 on SQLite (the whole exploration) and 1,200 on PostgreSQL, where every operation runs
again with fewer inputs each for what only that database refuses (a NUL in a string, an
integer past 64 bits), in less than half the time."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.stateful import run_state_machine_as_test
from schemathesis.checks import CHECKS

from thresher.client import Client
from thresher.testing import ServedController

pytestmark = pytest.mark.fuzz

#: (requests at least, examples per operation, state machine runs) by database; many
#: operations have fewer distinct inputs than their examples. Each run is up to `STEPS` calls.
BUDGET = {"sqlite": (5000, 45, 60), "postgresql": (1200, 10, 8)}
STEPS = 12

_CHECKED = {
    "response_schema_conformance",
    "content_type_conformance",
    "status_code_conformance",
}


def _settings(examples: int, **extra: Any) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,  # the same requests every run: a failure reproduces
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        **extra,
    )


class Recorder:
    """Sends each generated request, counts it, and keeps what was wrong with its answer."""

    def __init__(self, served: ServedController) -> None:
        self.url = served.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {served.admin_token}"
        self.sent = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.problems: dict[tuple[str, str], str] = {}
        self.checks = [check for check in CHECKS.get_all() if check.__name__ in _CHECKED]

    def call(self, case: Any) -> Any:
        response = case.call(base_url=self.url, session=self.session)
        self.sent += 1
        self.statuses[response.status_code] += 1
        label = f"{case.method} {case.operation.path}"
        if response.status_code >= 500:
            self.problems[(label, "5xx")] = f"{response.status_code}: {response.text[:300]}"
        try:
            case.validate_response(response, checks=self.checks)
        except BaseException as exc:  # schemathesis raises a FailureGroup (a BaseExceptionGroup)
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.problems[(label, "schema")] = " ".join(str(exc).split())[:600]
        return response

    def send(self, case: Any) -> None:
        self.call(case)

    def report(self) -> str:
        lines = [f"{label} [{kind}]: {text}" for (label, kind), text in self.problems.items()]
        return "\n".join(lines)


def _seed(admin: Client) -> None:
    """Objects for the generated requests to find: jobs (ids 1 and 2), a limit."""
    for name in ("fuzz-a", "fuzz-b"):
        admin.submit(name, ["true"], frames="1-3")
    admin.set_limit("licences", max_total=2)


def _each_operation(schema: Any, recorder: Recorder, examples: int) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        run: Callable[[], None] = given(case=operation.as_strategy())(recorder.send)
        _settings(examples)(run)()


def _scenarios(schema: Any, recorder: Recorder, runs: int) -> None:
    base = schema.as_state_machine()

    class Machine(base):  # type: ignore[misc,valid-type]
        def call(self, case: Any, **_: Any) -> Any:
            return recorder.call(case)

        def validate_response(self, *_: Any, **__: Any) -> None:
            pass  # Recorder.call checked it

    run_state_machine_as_test(Machine, settings=_settings(runs, stateful_step_count=STEPS))


def test_generated_requests_get_no_5xx_and_match_the_schema(
    served: ServedController, admin: Client, db_url: str
) -> None:
    least, examples, runs = BUDGET["sqlite" if db_url.startswith("sqlite") else "postgresql"]
    _seed(admin)
    schema = schemathesis.openapi.from_url(
        served.url + "/openapi.json", headers={"Authorization": f"Bearer {served.admin_token}"}
    )
    recorder = Recorder(served)
    _each_operation(schema, recorder, examples)
    _scenarios(schema, recorder, runs)

    print(f"fuzz: {recorder.sent} requests, statuses {dict(recorder.statuses)}")
    assert not recorder.problems, recorder.report()
    assert recorder.sent >= least, f"only {recorder.sent} requests: {recorder.statuses}"
    assert any(200 <= status < 300 for status in recorder.statuses), recorder.statuses
