"""Check an engine script in a process of its own: `python -m thresher.engines.check NAME`
reads the source on stdin, loads it, and prints one JSON line: {"ok": true, "settings": ...,
"parameters": ...} or {"ok": false, "message": ..., "details": ..., "field": ...}.

The controller runs this to validate a publication (with a time limit), so an engine's code
never runs inside the controller's process when it is published: a slow script cannot freeze
it, and what the script does when loaded happens here, in a process that is then gone."""

from __future__ import annotations

import json
import sys
from typing import Any

from thresher.engines.errors import EngineLoadError
from thresher.engines.loading import load_engine_source


def check(name: str, source: str) -> dict[str, Any]:
    try:
        engine_class = load_engine_source(name, source)
    except EngineLoadError as exc:
        field = "name" if exc.message.startswith("bad engine name") else "source"
        return {"ok": False, "message": exc.message, "details": exc.details, "field": field}
    settings, parameters = engine_class.settings(), engine_class.default_parameters()
    for label, value in (("SETTINGS", settings), ("PARAMETERS", parameters)):
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            return {
                "ok": False,
                "message": f"engine {name!r}: {label} must hold only JSON values: {exc}",
                "details": None,
                "field": "source",
            }
    return {"ok": True, "settings": settings, "parameters": parameters}


def main() -> None:
    name = sys.argv[1]
    source = sys.stdin.read()
    answer = check(name, source)
    sys.stdout.write("\n" + json.dumps(answer) + "\n")  # after whatever the script printed


if __name__ == "__main__":
    main()
