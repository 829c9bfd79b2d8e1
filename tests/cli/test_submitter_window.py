"""The desktop submitter as a person uses it: a real Qt window (xcb) on an Xvfb display started
here, a real controller. A `.pov` sequence is dropped, its range found, the form filled, the
JSON view read, the job submitted: the JSON view equals the body the controller received. A
screenshot is saved (THRESHER_ARTIFACTS, else the test's folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.desktop]

QtWidgets = pytest.importorskip("PySide6.QtWidgets", reason="the desktop extra (PySide6)")
if shutil.which("Xvfb") is None:
    pytest.skip(
        "Xvfb is not installed (scripts/install-system-deps.sh --desktop)", allow_module_level=True
    )

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QPlainTextEdit  # noqa: E402

from thresher.cli.submitter.payload import EnvRow, load_settings  # noqa: E402
from thresher.cli.submitter.window import SubmitterWindow  # noqa: E402
from thresher.client import Client  # noqa: E402
from thresher.controller.settings import ControllerSettings  # noqa: E402
from thresher.testing import serve_in_thread  # noqa: E402
from thresher.testing.serve import ServedController  # noqa: E402


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    """An Xvfb display of our own (it picks a free number and says which)."""
    read, write = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        assert number, "Xvfb did not say its display"
        yield f":{number}"
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)


@pytest.fixture(scope="module")
def app(display: str) -> QApplication:
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    existing = QApplication.instance()
    assert existing is None or isinstance(existing, QApplication)
    application = existing or QApplication(["thresher-submitter-test"])
    assert application.platformName() == "xcb"
    return application


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedController]:
    with serve_in_thread(ControllerSettings(data_dir=tmp_path / "farm")) as served:
        yield served


class Recording(httpx.HTTPTransport):
    """Passes requests on, keeping the body of each job submission as the controller got it."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[Any] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/v1/jobs":
            self.bodies.append(json.loads(request.read()))
        return super().handle_request(request)


def drop(window: SubmitterWindow, path: Path) -> None:
    """A file dropped on the window: Qt's drag-enter then drop events, handed to the widget's
    own event handler (QApplication delivers drop events only while its drag manager drives a
    real drag, which a test cannot start on Xvfb without a mouse)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    at, action = QPointF(20, 20), Qt.DropAction.CopyAction
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(at, action, mime, buttons, keys)
    window.event(enter)
    assert enter.isAccepted()  # the window takes files
    event = QDropEvent(at, action, mime, buttons, keys)
    assert window.event(event)
    assert event.isAccepted()


def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("THRESHER_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_dropped_pov_sequence_is_submitted_as_the_json_view_shows(
    app: QApplication, served: ServedController, tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    for n in range(1, 25):
        (shots / f"scene.{n:04d}.pov").write_text(f"// frame {n}\n")
    recording = Recording()
    settings = tmp_path / "config" / "submitter.json"
    with Client(served.url, served.admin_token, transport=recording) as client:
        client.set_volume("proj", {"hq": {"*": str(tmp_path / "proj")}})  # for share=proj/...
        window = SubmitterWindow(client, settings_file=settings)
        window.resize(760, 980)
        window.show()
        app.processEvents()

        drop(window, shots / "scene.0007.pov")
        app.processEvents()
        assert window.range.text() == "1-24"
        assert window.sequence.text() == "scene.####.pov: 24 files, 1-24"
        assert window.input.text() == str(shots / "scene.####.pov")
        assert window.engine.currentText() == "povray"  # it takes .pov: first, chosen
        assert window.engine.itemText(0) == "povray"

        window.priority.setValue(70)
        window.bucket.setValue(6)
        window.ram.setValue(2)
        window.pools.setText("lookdev")
        window.filters.setText("ram:lots")
        assert window.filter_check.text().startswith("✗")  # checked as it is typed
        window.filters.setText("os:linux")
        assert window.filter_check.text() == "✓ filters are valid"
        window.output.setText(str(tmp_path / "out") + "/")
        window.download_output.setChecked(True)
        window.dependencies.setPlainText(f"{shots}/textures.inc\nshare=proj/tex/stone.png")
        window.upload_dependencies.setChecked(True)
        window.add_env_row(EnvRow("linux", "POV_LIB", "/opt/pov/include"))
        window.arguments.setText("+Q9")
        app.processEvents()

        window.json_button.click()
        app.processEvents()
        view = window.json_dialog.findChild(QPlainTextEdit, "payload")
        assert view is not None
        shown = json.loads(view.toPlainText())
        window.grab().save(str(artifacts(tmp_path) / "submitter-window.png"))
        window.json_dialog.grab().save(str(artifacts(tmp_path) / "submitter-json.png"))

        window.submit_button.click()
        app.processEvents()
        assert window.status.text().startswith("submitted job ")
        assert recording.bodies == [shown]  # what the JSON view showed is what was received
        job = client.job(window.last_job.id)
        window.close()

    assert (job.name, job.priority, job.filters) == (
        "povray: scene.####.pov",
        70,
        "ram:>2GB,pool:+lookdev,os:linux",
    )
    assert job.payload["range"] == "1-24"
    assert job.payload["dependencies"] == [f"{shots}/textures.inc", "share=proj/tex/stone.png"]
    assert job.payload["settings"] == {
        "task_bucketsize": 6,
        "download_output": True,
        "upload_dependencies": True,
    }
    assert job.counts.total == 4  # 24 frames in buckets of 6
    remembered = load_settings(settings)
    assert (remembered.priority, remembered.pools, remembered.input) == (70, ("lookdev",), "")
