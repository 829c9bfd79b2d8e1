"""The web monitor in a real Chromium (Debian's, driven by Playwright) against a real farm
(`thresher controller` and `thresher worker` processes): a job's grid fills without a reload,
a live log shows a line as it is written, a job is canceled from the page, a frame range
selected on the strip is retried, a worker's resource graph is drawn. Screenshots go to
$THRESHER_ARTIFACTS (else a temporary directory), and to docs/images with
THRESHER_DOC_IMAGES=1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Farm
from thresher.testing import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
CHROMIUM = "/usr/bin/chromium"
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    f = Farm(tmp_path_factory.mktemp("farm"), None)
    try:
        f.controller()
        f.worker("w1", lanes=2)
        yield f
    finally:
        f.stop_all()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("THRESHER_ARTIFACTS")
    path = Path(where) / "monitor" if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def page(farm: Farm, shots: Path) -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(farm.url + "/")
        page.fill("#token", farm.token)
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("table#jobs")
        yield page
        browser.close()
        assert errors == [], errors


def shot(page: Any, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    if os.environ.get("THRESHER_DOC_IMAGES"):
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOC_IMAGES / f"monitor-{name}.png")


def test_a_job_grid_fills_without_a_reload(farm: Farm, page: Any, shots: Path) -> None:
    with farm.client() as client:
        job = client.submit("grid", ["sh", "-c", "sleep 0.3"], frames="1-24")
    page.goto(f"{farm.url}/#/job/{job.id}")
    page.wait_for_selector("canvas.grid[data-tasks='24']")
    page.evaluate("window.__same_page = true")
    page.wait_for_function(
        "Number(document.querySelector('canvas.grid')?.dataset.succeeded) >= 4", timeout=60_000
    )
    shot(page, shots, "job-running")
    page.wait_for_function(
        "document.querySelector('canvas.grid')?.dataset.succeeded === '24'", timeout=60_000
    )
    assert page.evaluate("window.__same_page") is True  # filled by events, not a reload
    page.wait_for_function("document.querySelector('#job-state').textContent === 'succeeded'")
    shot(page, shots, "job")


def test_a_live_log_shows_a_line_as_it_is_written(farm: Farm, page: Any, shots: Path) -> None:
    marker = farm.tmp / "go"
    script = f"echo first line; while [ ! -e {marker} ]; do sleep 0.1; done; echo second line"
    with farm.client() as client:
        job = client.submit("log", ["sh", "-c", script + "; sleep 60"], frames="1")
        wait_until(
            lambda: client.task(job.id, 0).status == "running", timeout=30, what="task running"
        )
    page.goto(f"{farm.url}/#/task/{job.id}/0/0")
    page.wait_for_function("document.querySelector('#log')?.textContent.includes('first line')")
    assert "second line" not in (page.text_content("#log") or "")
    marker.touch()
    page.wait_for_function(
        "document.querySelector('#log')?.textContent.includes('second line')", timeout=20_000
    )
    shot(page, shots, "task-log")

    page.goto(f"{farm.url}/#/jobs")
    row = page.locator(f"tr[data-job='{job.id}']")
    row.locator("button[data-action='cancel']").click()
    with farm.client() as client:
        wait_until(lambda: client.job(job.id).status == "canceled", timeout=30, what="job canceled")
    page.wait_for_function(
        f"document.querySelector(\"tr[data-job='{job.id}'] .state\")?.textContent === 'canceled'"
    )
    shot(page, shots, "jobs")


def test_a_frame_range_selected_on_the_strip_is_retried(farm: Farm, page: Any, shots: Path) -> None:
    with farm.client() as client:
        job = client.submit("strip", ["true"], frames="1-20")
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=60, what="job done")
    page.goto(f"{farm.url}/#/job/{job.id}")
    strip = page.locator("canvas.strip[data-block='0']")
    strip.wait_for()
    page.wait_for_function(
        "document.querySelector('canvas.grid')?.dataset.succeeded === '20'", timeout=10_000
    )
    box = strip.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.26, y)  # task 5
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.49, y, steps=5)  # task 9
    page.mouse.up()
    page.wait_for_selector("#selection-0 button[data-range='retry']")
    assert "tasks 5\u20139 (frames 6\u201310)" in (page.text_content("#selection-0") or "")
    shot(page, shots, "strip-selection")
    page.click("#selection-0 button[data-range='retry']")

    with farm.client() as client:
        wait_until(
            lambda: (
                [len(client.task(job.id, i).attempts_detail) for i in range(4, 11)]
                == [1, 2, 2, 2, 2, 2, 1]
            ),
            timeout=60,
            what="tasks 5-9 run again",
        )


def test_a_worker_graph_is_drawn_from_its_samples(farm: Farm, page: Any, shots: Path) -> None:
    with farm.client() as client:
        wait_until(lambda: client.samples("w1").points, timeout=60, what="samples of w1")
    page.goto(f"{farm.url}/#/worker/w1")
    page.wait_for_selector("[data-chart='CPU %'] path[data-series='user']")
    shot(page, shots, "worker")
    page.goto(f"{farm.url}/#/farm")
    page.wait_for_selector("tr[data-worker='w1'] .meter.cpu em")
    shot(page, shots, "farm")
    page.goto(f"{farm.url}/#/stats")
    page.wait_for_selector("[data-stat='Render hours by engine'] svg rect")
    shot(page, shots, "stats")
