"""Published engines' parameter checks, in a process of their own: `python -m
thresher.engines.host` reads one JSON request a line on stdin, `{"name", "source",
"parameters"}`, and answers each with one JSON line on stdout: `{"ok": true, "merged": {...}}`,
or `{"ok": false, "message": ..., "parameter": ...}` when the engine refused the parameters
(`parameter` names the one at fault, or is null), or `{"ok": false, "message": ..., "load":
true}` when the source no longer loads.

The controller keeps one such process (`controller.engine_host`) to check engine jobs at submit:
a published engine is code an admin wrote, and the controller never runs it in its own process
(a script's module code, a crash or a hang stays here). Loaded classes are kept by source hash,
so a request costs a line each way once an engine is known. What the engine prints goes to
stderr: stdout carries only answers."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import IO, Any

from thresher.engines.base import Engine
from thresher.engines.errors import EngineConfigError, EngineLoadError
from thresher.engines.loading import load_engine_source, source_hash


def answer(classes: dict[str, type[Engine]], request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one request; `classes` keeps what was loaded, by source hash."""
    name, source = str(request["name"]), str(request["source"])
    digest = source_hash(source)
    engine = classes.get(digest)
    if engine is None:
        try:
            engine = load_engine_source(name, source)
        except EngineLoadError as exc:
            return {"ok": False, "message": exc.message, "load": True}
        classes[digest] = engine
    try:
        merged = engine.merge_parameters(request.get("parameters") or {})
        json.dumps(merged)
    except EngineConfigError as exc:
        return {"ok": False, "message": exc.message, "parameter": exc.parameter}
    except Exception as exc:  # engine code: its error is the answer
        return {"ok": False, "message": f"{type(exc).__name__}: {exc}", "parameter": None}
    return {"ok": True, "merged": merged}


def serve(requests: IO[str], answers: IO[str]) -> None:
    classes: dict[str, type[Engine]] = {}
    for line in requests:
        try:
            request = json.loads(line)
        except ValueError:
            reply: dict[str, Any] = {"ok": False, "message": "not a JSON request", "load": True}
        else:
            with contextlib.redirect_stdout(sys.stderr):  # an engine's prints are not answers
                reply = answer(classes, request)
        answers.write(json.dumps(reply) + "\n")
        answers.flush()


def main() -> None:
    serve(sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
