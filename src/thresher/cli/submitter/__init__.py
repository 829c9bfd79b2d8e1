"""`thresher submitter`: the desktop submitter, a PySide6 window (the `desktop` extra:
`pip install 'thresher[desktop]'`). Its decisions are in `payload` (no Qt, tested without a
display); the window is `window`."""

# Annotations here are values, not strings (no `from __future__ import annotations`): see
# thresher.cli.main on why.

import sys
from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.common import DEFAULT_URL, TokenOption, UrlOption, connect, fail


def submitter(
    scene: Annotated[
        str | None, typer.Argument(help="A scene to start with (else drop one).")
    ] = None,
    settings_file: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            metavar="FILE",
            help="Where to remember settings (default: $XDG_CONFIG_HOME/thresher/submitter.json).",
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Open the desktop submitter: drop a scene, check the form, submit."""
    try:
        from PySide6.QtWidgets import QApplication

        from thresher.cli.submitter.payload import settings_path
        from thresher.cli.submitter.window import SubmitterWindow
    except ImportError as exc:
        fail(f"the desktop submitter needs PySide6: pip install 'thresher[desktop]' ({exc})")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with connect(url, token) as client:
        window = SubmitterWindow(client, settings_file=settings_file or settings_path())
        if scene:
            window.set_input(scene)
        window.show()
        app.exec()


def register(app: typer.Typer) -> None:
    app.command("submitter")(submitter)
