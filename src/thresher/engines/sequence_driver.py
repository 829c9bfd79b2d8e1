"""Run several commands one after another as one process: a chunk of per-frame renders.

Some applications render one frame per process (Mantra reads one IFD per frame, ``kick`` one
``.ass``). A task that holds several frames runs this driver, standard library only, as
``python -I -m thresher.engines.sequence_driver '<json>'`` where the JSON is
``{"steps": [{"frame": 12, "argv": [...]}, ...]}``. Before each step it prints the marker line
``[thresher] step I of N: frame F`` (engines turn it into frame and progress events); the
steps share the driver's stdout and stderr. The first failing step ends the run with that
step's exit status. SIGTERM or SIGINT is passed on to the running step; the driver then exits
with 128 + the signal number without starting another step.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from types import FrameType


def main(args: list[str]) -> int:
    if len(args) != 1:
        print("usage: sequence_driver '<json steps>'", file=sys.stderr)
        return 2
    steps = json.loads(args[0])["steps"]
    running: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    total = len(steps)
    for number, step in enumerate(steps, start=1):
        if stopping:
            break
        frame = step.get("frame")
        label = f"frame {frame}" if frame is not None else "no frame"
        print(f"[thresher] step {number} of {total}: {label}", flush=True)
        try:
            proc = subprocess.Popen([str(a) for a in step["argv"]])
        except OSError as exc:
            print(f"[thresher] step {number} of {total} could not start: {exc}", file=sys.stderr)
            return 127
        running[:] = [proc]
        if stopping and proc.poll() is None:
            proc.send_signal(stopping[0])
        code = proc.wait()
        if stopping:
            break
        if code != 0:
            print(
                f"[thresher] step {number} of {total} failed with exit code {code}",
                file=sys.stderr,
                flush=True,
            )
            return code if 0 < code < 256 else 128 + abs(code)
    if stopping:
        return 128 + stopping[0]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
