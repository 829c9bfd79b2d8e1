"""Houdini: render a ROP node of a ``.hip`` file over a chunk of frames with ``hython``.

Command line (no shell; the script below is passed with ``-c``, its inputs as arguments)::

    hython -c SCRIPT scene.hip /out/mantra1 12,13,14 [output]

The script loads the hip file (``hou.hipFile.load``), finds the ROP (``hou.node``) and renders
each frame with ``hou.RopNode.render(frame_range=(f, f), verbose=True, output_progress=True)``,
from SideFX's HOM documentation, printing ``[thresher] houdini frame F (I of N)`` before and the
written file after each frame. ``output``, when set, overrides the ROP's output file (``$F4``
works as in Houdini); a folder output gets ``<hip name>.$F4.exr`` inside it. A failed render
(``hou.OperationFailed``, or errors on the ROP) exits with status 1 after printing
``[thresher] houdini error: ...``. Parameters: ``rop`` (required, e.g. ``/out/mantra1``),
``ignore_inputs`` (render only this ROP). Progress also comes from the ``ALF_PROGRESS 40%``
lines ``output_progress`` makes ROPs print.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from thresher.engines.base import Engine as BaseEngine
from thresher.engines.errors import EngineConfigError
from thresher.engines.events import EngineEvent
from thresher.engines.task import EngineTask

# Runs inside hython (Python 3): argv is [hip, rop, frames, output, ignore_inputs].
SCRIPT = """\
import sys
import hou

def say(text):
    print("[thresher] houdini " + text, flush=True)

hip, rop_path, frames_text, output, ignore_inputs = sys.argv[1:6]
frames = [int(f) for f in frames_text.split(",")]
try:
    hou.hipFile.load(hip, suppress_save_prompt=True, ignore_load_warnings=True)
except hou.LoadWarning as warning:
    say("warning: " + str(warning))
except hou.OperationFailed as exc:
    say("error: cannot load " + hip + ": " + str(exc))
    sys.exit(1)
rop = hou.node(rop_path)
if rop is None or not isinstance(rop, hou.RopNode):
    say("error: no ROP node at " + rop_path)
    sys.exit(1)
outputs = ("vm_picture", "picture", "ar_picture", "RS_outputFileNamePrefix", "sopoutput",
           "lopoutput", "copoutput", "filename", "outputimage")
for index, frame in enumerate(frames, 1):
    say("frame %d (%d of %d)" % (frame, index, len(frames)))
    options = dict(frame_range=(frame, frame), verbose=True, output_progress=True,
                   ignore_inputs=ignore_inputs == "1")
    if output:
        options["output_file"] = output
    try:
        rop.render(**options)
    except hou.OperationFailed as exc:
        say("error: frame %d: %s" % (frame, exc))
        sys.exit(1)
    if rop.errors():
        say("error: frame %d: %s" % (frame, "; ".join(rop.errors())))
        sys.exit(1)
    written = output and hou.expandStringAtFrame(output, frame)
    for name in outputs:
        parm = rop.parm(name)
        if not written and parm is not None:
            written = parm.evalAsStringAtFrame(frame)
    if written:
        say("wrote " + written)
"""

_FRAME = re.compile(r"^\[thresher\] houdini frame (-?\d+) \((\d+) of (\d+)\)")
_WROTE = re.compile(r"^\[thresher\] houdini wrote (.+)$")
_OWN_ERROR = re.compile(r"^\[thresher\] houdini error: (.*)$")
_OWN_WARNING = re.compile(r"^\[thresher\] houdini warning: (.*)$")
_ALF = re.compile(r"ALF_PROGRESS\s+(\d+(?:\.\d+)?)%")
_ERROR = re.compile(r"^(?:Error|ERROR)\b|\bTraceback \(most recent call last\)")
_WARNING = re.compile(r"^(?:Warning|WARNING)\b")


class Engine(BaseEngine):
    SETTINGS: ClassVar[dict[str, Any]] = {
        "description": "Houdini: procedural rendering and simulation",
        "vendor": "SideFX",
        "colour": "#ff4713",
        "items": "frames",
        "type": "render",
        "filename_extensions": [".hip", ".hiplc", ".hipnc"],
        "binary_filename_extensions": [".hip", ".hiplc", ".hipnc"],
        "default_range": "1-100",
        "default_bucketsize": 5,
    }
    PARAMETERS: ClassVar[dict[str, Any]] = {
        "rop": None,
        "ignore_inputs": False,
    }
    OUTPUT_NAME: ClassVar[str | None] = "{stem}.$F4.exr"  # Houdini expands $F4, not ####

    def get_executable(self) -> str:
        return "hython"

    def get_commandline(self, task: EngineTask) -> list[str]:
        if not task.input:
            raise EngineConfigError("houdini needs an input .hip file")
        rop = self.parameter(task, "rop")
        if not rop:
            raise EngineConfigError("houdini needs the ROP node to render", parameter="rop")
        if not task.frames:
            raise EngineConfigError("houdini needs frames to render")
        frames = ",".join(str(f) for f in task.frames)
        ignore_inputs = "1" if self.parameter(task, "ignore_inputs", False) else "0"
        return [
            self.executable(task),
            *self.arguments(task),
            "-c",
            SCRIPT,
            task.input,
            str(rop),
            frames,
            task.output or "",
            ignore_inputs,
        ]

    def parse_line(self, line: str, stream: str) -> list[EngineEvent]:
        frame = _FRAME.match(line)
        if frame:
            number, index, total = (int(g) for g in frame.groups())
            return [*self.enter_frame(number), EngineEvent.progress((index - 1) / total * 100.0)]
        wrote = _WROTE.match(line)
        if wrote:
            return [EngineEvent.output(wrote.group(1)), self.chunk_progress(1.0)]
        own_error = _OWN_ERROR.match(line)
        if own_error:
            return [EngineEvent.error(own_error.group(1))]
        own_warning = _OWN_WARNING.match(line)
        if own_warning:
            return [EngineEvent.warning(own_warning.group(1))]
        alf = _ALF.search(line)
        if alf:
            return [self.chunk_progress(float(alf.group(1)) / 100.0)]
        if _ERROR.search(line):
            return [EngineEvent.error(line.strip())]
        if _WARNING.search(line):
            return [EngineEvent.warning(line.strip())]
        return []
