"""Numbers in a path or query past what the store holds are a 422 naming them, never a 500."""

from __future__ import annotations

import httpx
import pytest

from thresher.testing import ServedController

HUGE = str(2**64)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/v1/jobs/{HUGE}", "job_id"),
        (f"/api/v1/jobs/{HUGE}/why", "job_id"),
        (f"/api/v1/jobs/1/blocks/{HUGE}/tasks/0", "block"),
        (f"/api/v1/jobs/1/blocks/0/tasks/{HUGE}", "index"),
        (f"/api/v1/jobs/1/tasks?offset={HUGE}", "offset"),
        (f"/api/v1/jobs/1/blocks/0/tasks/0/log?after={HUGE}", "after"),
        (f"/api/v1/jobs?offset={HUGE}", "offset"),
    ],
)
def test_a_number_too_big_is_refused_naming_it(
    served: ServedController, path: str, field: str
) -> None:
    headers = {"Authorization": f"Bearer {served.admin_token}"}
    with httpx.Client(base_url=served.url, headers=headers) as http:
        response = http.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
