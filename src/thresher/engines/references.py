"""The files an ASCII scene references, found by reading it: what a job depends on besides its
input, so it can sync with it (`thresher submit --parse-deps`).

Formats read: POV-Ray (``#include "x.inc"``, image maps and other bitmap files named by type:
``png "wood.png"``), OBJ (``mtllib``) and its MTL files (``map_Kd`` and the other maps), USD
ASCII (``@asset.usd@`` paths), Maya ASCII (``file -r ... "path"`` references and
``setAttr ... -type "string" "path"`` texture names), Nuke scripts (``file`` of ``Read`` and
``ReadGeo`` nodes), Houdini IFD (quoted paths of texture and geometry files). References are
followed into the files they name when those are readable scenes too (an include's includes);
relative paths are taken from the referencing file's folder (POV-Ray: also the scene's own).
Only files that exist are listed; the input itself never is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

MAX_FILES = 10_000
MAX_BYTES = 64 * 1024 * 1024  # files larger than this are not read for references

_QUOTED = r'"([^"\n]+)"'
_POV = re.compile(
    r'#include\s+"([^"\n]+)"|\b(?:png|jpeg|jpg|tga|tiff|exr|hdr|gif|iff|ppm|pgm|sys|df3|ttf)\s+'
    + _QUOTED
)
_OBJ = re.compile(r"^\s*mtllib\s+(.+?)\s*$", re.M)
_MTL = re.compile(r"^[ \t]*(?:map_\w+|bump|disp|decal|refl)[ \t]+[^\n]*?(\S+)[ \t]*$", re.M)
_USDA = re.compile(r"@([^@\n]+)@")
_MA = re.compile(
    r"^\s*file\s+[^;]*?-r[^;]*?" + _QUOTED + r'\s*;|-type\s+"string"\s+' + _QUOTED, re.M
)
_NUKE = re.compile(r"^\s*(?:Read|ReadGeo\d*)\s*\{([^}]*)\}", re.M)
_NUKE_FILE = re.compile(r"^\s*file\s+(\"[^\"]+\"|\S+)", re.M)
_IFD = re.compile(r'"([^"\n]+\.(?:rat|exr|tif|tiff|png|jpg|jpeg|hdr|tx|bgeo|bgeo\.sc|geo|vdb))"')


def _pov(text: str) -> list[str]:
    return [a or b for a, b in _POV.findall(text)]


def _ma(text: str) -> list[str]:
    return [a or b for a, b in _MA.findall(text)]


def _nuke(text: str) -> list[str]:
    found = []
    for body in _NUKE.findall(text):
        for name in _NUKE_FILE.findall(body):
            found.append(name.strip('"'))
    return found


READERS: dict[str, Callable[[str], list[str]]] = {
    ".pov": _pov,
    ".inc": _pov,
    ".obj": _OBJ.findall,
    ".mtl": _MTL.findall,
    ".usda": _USDA.findall,
    ".ma": _ma,
    ".nk": _nuke,
    ".ifd": _IFD.findall,
}


def _candidates(name: str, base: Path, scene_dir: Path) -> list[Path]:
    path = Path(name)
    if path.is_absolute():
        return [path]
    return [base / path, scene_dir / path]


def references(scene: Path) -> list[Path]:
    """The existing files `scene` references, directly or through the files it names."""
    scene = scene.resolve()
    found: dict[Path, None] = {}
    todo = [scene]
    seen = {scene}
    while todo and len(found) < MAX_FILES:
        current = todo.pop()
        reader = READERS.get(current.suffix.lower())
        if reader is None or current.stat().st_size > MAX_BYTES:
            continue
        text = current.read_text(errors="replace")
        for name in reader(text):
            if "#" in name or "%" in name or "$" in name:  # frame patterns, variables: not files
                continue
            for candidate in _candidates(name.strip(), current.parent, scene.parent):
                if candidate.is_file():
                    resolved = candidate.resolve()
                    if resolved not in seen:
                        seen.add(resolved)
                        found[resolved] = None
                        todo.append(resolved)
                    break
    return sorted(found)
