"""The desktop submitter's window (PySide6): a scene dropped or browsed for, its sequence found,
an engine chosen among the controller's, and the job sent. Every decision is in `payload.py`;
this module shows a `Form`, reads it back and calls the client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from thresher.cli.submitter import payload as pl


class Submits(Protocol):
    """What the window needs of a client: the engines, and a job created from a payload."""

    def engines(self) -> list[Any]: ...

    def create_job(self, data: dict[str, Any]) -> Any: ...


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return box


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.replace(",", " ").split() if w.strip())


class SubmitterWindow(QWidget):
    """`thresher submitter`: drop a scene, check the form, press Submit (or JSON to see the
    exact payload first)."""

    def __init__(
        self,
        client: Submits,
        *,
        settings_file: Path | None = None,
        pick_file: Callable[[], str] | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        self.settings_file = settings_file
        self.pick_file = pick_file or self._browse_dialog
        self.engine_choices: list[pl.EngineChoice] = []
        self.last_payload: dict[str, Any] | None = None
        self.last_job: Any = None
        self.setWindowTitle("Thresher submitter")
        self.setAcceptDrops(True)
        self._build()
        self._load_engines()
        self.show_form(pl.load_settings(settings_file) if settings_file else pl.Form())

    # -- layout ---------------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.addWidget(self._scene_box())
        outer.addWidget(self._work_box())
        outer.addWidget(self._filters_box())
        outer.addWidget(self._files_box())
        outer.addWidget(self._env_box())
        self.status = QLabel("Drop a scene here, or browse for one.")
        self.status.setObjectName("status")
        self.json_button = QPushButton("JSON")
        self.submit_button = QPushButton("Submit")
        self.json_button.clicked.connect(self.show_json)
        self.submit_button.clicked.connect(self.submit)
        outer.addWidget(_row(self.status, self.json_button, self.submit_button))

    def _scene_box(self) -> QGroupBox:
        box = QGroupBox("Scene")
        form = QFormLayout(box)
        self.input = QLineEdit()
        self.input.setPlaceholderText("a scene file, or one file of a sequence")
        self.input.editingFinished.connect(lambda: self.set_input(self.input.text()))
        browse = QPushButton("Browse…")
        browse.clicked.connect(lambda: self.set_input(self.pick_file()))
        form.addRow("Input", _row(self.input, browse))
        self.sequence = QLabel("")
        self.sequence.setObjectName("sequence")
        self.sequence_input = QCheckBox("per-frame input files (a #### pattern)")
        form.addRow("Sequence", _row(self.sequence, self.sequence_input))
        self.engine = QComboBox()
        form.addRow("Engine", self.engine)
        self.name = QLineEdit()
        self.name.setPlaceholderText("default: <engine>: <input file>")
        form.addRow("Name", self.name)
        return box

    def _work_box(self) -> QGroupBox:
        box = QGroupBox("Frames")
        form = QFormLayout(box)
        self.range = QLineEdit()
        self.range.setPlaceholderText("default: the engine's; 1-100, 5-250x5, 1-10,20")
        self.priority_frames = QLineEdit()
        self.priority_frames.setPlaceholderText("rendered first: 1,50,100")
        form.addRow("Range", self.range)
        form.addRow("Priority frames", self.priority_frames)
        self.priority = QSpinBox()
        self.priority.setRange(0, 100)
        self.split = QComboBox()
        self.split.addItems(list(pl.SPLIT_MODES))
        self.bucket = QSpinBox()
        self.bucket.setRange(1, 10_000_000)
        self.split.currentTextChanged.connect(lambda t: self.bucket.setEnabled(t == "buckets"))
        form.addRow("Priority", self.priority)
        form.addRow("Split", _row(self.split, QLabel("items per task"), self.bucket))
        self.paused = QCheckBox("submit paused")
        form.addRow("", self.paused)
        return box

    def _filters_box(self) -> QGroupBox:
        box = QGroupBox("Workers")
        form = QFormLayout(box)
        self.ram = QSpinBox()
        self.ram.setRange(0, 100_000)
        self.ram.setSuffix(" GB")
        self.ram.setSpecialValueText("any")
        self.sites = QLineEdit()
        self.sites.setPlaceholderText("hq, sthlm")
        self.pools = QLineEdit()
        self.pools.setPlaceholderText("gpu")
        self.filters = QLineEdit()
        self.filters.setPlaceholderText("os:linux,hostname:*render*")
        self.filter_check = QLabel("")
        self.filter_check.setObjectName("filter_check")
        for widget in (self.filters, self.sites, self.pools):
            widget.textChanged.connect(self.check_filters)
        self.ram.valueChanged.connect(self.check_filters)
        form.addRow("RAM at least", self.ram)
        form.addRow("Sites", self.sites)
        form.addRow("Pools", self.pools)
        form.addRow("Filters", self.filters)
        form.addRow("", self.filter_check)
        return box

    def _files_box(self) -> QGroupBox:
        box = QGroupBox("Files")
        form = QFormLayout(box)
        self.dependencies = QPlainTextEdit()
        self.dependencies.setPlaceholderText("one per row: /proj/tex/a.exr or share=proj/tex/b.exr")
        self.dependencies.setMaximumHeight(60)
        self.upload_dependencies = QCheckBox("upload dependencies")
        add_files = QPushButton("Add files…")
        add_files.clicked.connect(self._add_dependencies)
        form.addRow("Dependencies", self.dependencies)
        form.addRow("", _row(self.upload_dependencies, add_files))
        self.output = QLineEdit()
        self.output.setPlaceholderText("the output folder, file or pattern")
        self.clear_output = QCheckBox("clear output")
        self.download_output = QCheckBox("download output on finished tasks")
        pick_output = QPushButton("Browse…")
        pick_output.clicked.connect(self._browse_output)
        form.addRow("Output", _row(self.output, pick_output))
        form.addRow("", _row(self.clear_output, self.download_output))
        self.arguments = QLineEdit()
        self.arguments.setPlaceholderText("extra application arguments")
        form.addRow("Arguments", self.arguments)
        return box

    def _env_box(self) -> QGroupBox:
        box = QGroupBox("Environment")
        layout = QVBoxLayout(box)
        self.env = QTableWidget(0, 3)
        self.env.setHorizontalHeaderLabels(["platform", "name", "value"])
        self.env.setMaximumHeight(110)
        self.env.horizontalHeader().setStretchLastSection(True)
        add, remove = QPushButton("Add row"), QPushButton("Remove row")
        add.clicked.connect(lambda: self.add_env_row(pl.EnvRow("common", "", "")))
        remove.clicked.connect(lambda: self.env.removeRow(max(self.env.currentRow(), 0)))
        layout.addWidget(self.env)
        layout.addWidget(_row(add, remove))
        return box

    # -- the form in and out --------------------------------------------------------------------

    def add_env_row(self, row: pl.EnvRow) -> None:
        at = self.env.rowCount()
        self.env.insertRow(at)
        platform = QComboBox()
        platform.addItems(list(pl.PLATFORMS))
        platform.setCurrentText(row.platform)
        self.env.setCellWidget(at, 0, platform)
        self.env.setItem(at, 1, QTableWidgetItem(row.name))
        self.env.setItem(at, 2, QTableWidgetItem(row.value))

    def _env_rows(self) -> tuple[pl.EnvRow, ...]:
        rows = []
        for at in range(self.env.rowCount()):
            platform = self.env.cellWidget(at, 0)
            name, value = self.env.item(at, 1), self.env.item(at, 2)
            rows.append(
                pl.EnvRow(
                    platform.currentText() if isinstance(platform, QComboBox) else "common",
                    name.text() if name else "",
                    value.text() if value else "",
                )
            )
        return tuple(rows)

    def form(self) -> pl.Form:
        """What the window holds, as a Form."""
        return pl.Form(
            input=self.input.text(),
            engine=self.engine.currentText(),
            name=self.name.text(),
            range=self.range.text(),
            sequence_input=self.sequence_input.isChecked(),
            priority_frames=self.priority_frames.text(),
            priority=self.priority.value(),
            split=self.split.currentText(),
            bucket=self.bucket.value(),
            ram_gb=self.ram.value(),
            sites=_words(self.sites.text()),
            pools=_words(self.pools.text()),
            filters=self.filters.text(),
            dependencies=pl.lines(self.dependencies.toPlainText()),
            upload_dependencies=self.upload_dependencies.isChecked(),
            output=self.output.text(),
            clear_output=self.clear_output.isChecked(),
            download_output=self.download_output.isChecked(),
            env=self._env_rows(),
            arguments=self.arguments.text(),
            paused=self.paused.isChecked(),
        )

    def show_form(self, form: pl.Form) -> None:
        """Fill the window from `form` (remembered settings, or a test's)."""
        self.input.setText(form.input)
        if form.engine:
            self.engine.setCurrentText(form.engine)
        self.name.setText(form.name)
        self.range.setText(form.range)
        self.priority_frames.setText(form.priority_frames)
        self.priority.setValue(form.priority)
        self.split.setCurrentText(form.split)
        self.bucket.setValue(max(form.bucket, 1))
        self.ram.setValue(form.ram_gb)
        self.sites.setText(", ".join(form.sites))
        self.pools.setText(", ".join(form.pools))
        self.filters.setText(form.filters)
        self.dependencies.setPlainText("\n".join(form.dependencies))
        self.upload_dependencies.setChecked(form.upload_dependencies)
        self.output.setText(form.output)
        self.clear_output.setChecked(form.clear_output)
        self.download_output.setChecked(form.download_output)
        self.env.setRowCount(0)
        for row in form.env:
            self.add_env_row(row)
        self.arguments.setText(form.arguments)
        self.paused.setChecked(form.paused)
        self.check_filters()

    # -- behaviour ------------------------------------------------------------------------------

    def _load_engines(self) -> None:
        try:
            engines = self.client.engines()
        except Exception as exc:  # the controller's word, shown, not raised
            self.status.setText(f"cannot list the engines: {exc}")
            engines = []
        self.engine_choices = [
            pl.EngineChoice(
                e.name, tuple(e.settings.get("filename_extensions") or ()), bool(e.enabled)
            )
            for e in engines
        ]
        self._order_engines("")

    def _order_engines(self, path: str) -> None:
        current = self.engine.currentText()
        ordered = pl.order_engines(self.engine_choices, path)
        self.engine.clear()
        self.engine.addItems([e.name for e in ordered])
        suffix = Path(path).suffix.lower()
        fits = [e.name for e in ordered if suffix and suffix in e.extensions]
        self.engine.setCurrentText(fits[0] if fits else current)

    def set_input(self, path: str) -> None:
        """A scene chosen: find its sequence, fill the range, put fitting engines first."""
        if not path:
            return
        self.input.setText(path)
        self._order_engines(path)
        found = pl.sequence_on_disk(path)
        if found is None or found.count < 2:
            self.sequence.setText("a single file")
            self.sequence_input.setChecked(False)
            return
        self.sequence.setText(f"{Path(found.pattern).name}: {found.count} files, {found.frames}")
        self.range.setText(found.frames)
        self.sequence_input.setChecked(True)
        self.input.setText(found.pattern)

    def check_filters(self) -> None:
        problem = pl.filter_problem(pl.composed_filters(self.form()))
        self.filter_check.setText(f"✗ {problem}" if problem else "✓ filters are valid")
        self.filter_check.setStyleSheet("color: #b00020;" if problem else "color: #1b5e20;")

    def payload(self) -> dict[str, Any] | None:
        found = pl.problems(self.form())
        if found:
            self.status.setText("; ".join(f"{p.field}: {p.message}" for p in found))
            return None
        return pl.build_payload(self.form())

    def show_json(self) -> QDialog | None:
        """The exact payload Submit sends, in a dialog (left open; returned for tests)."""
        body = self.payload()
        if body is None:
            return None
        dialog = QDialog(self)
        dialog.setWindowTitle("API payload")
        layout = QVBoxLayout(dialog)
        text = QPlainTextEdit(pl.payload_json(self.form()))
        text.setObjectName("payload")
        text.setReadOnly(True)
        layout.addWidget(text)
        dialog.resize(520, 480)
        dialog.show()
        self.json_dialog = dialog
        return dialog

    def submit(self) -> None:
        body = self.payload()
        if body is None:
            return
        try:
            job = self.client.create_job(body)
        except Exception as exc:  # the controller's refusal, shown to the person
            self.status.setText(f"refused: {exc}")
            return
        self.last_payload, self.last_job = body, job
        self.status.setText(f"submitted job {job.id}: {job.name}")
        if self.settings_file is not None:
            pl.save_settings(self.settings_file, self.form())

    def _add_dependencies(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Dependencies")
        rows = [*pl.lines(self.dependencies.toPlainText()), *map(str, paths)]
        self.dependencies.setPlainText("\n".join(pl.dependency_rows(rows)))

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder")
        if folder:
            self.output.setText(str(folder) + "/")

    def _browse_dialog(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self, "Scene")
        return str(path)

    # -- drag and drop --------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.set_input(urls[0].toLocalFile())
            event.acceptProposedAction()
