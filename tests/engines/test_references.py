"""Dependency discovery: the files an ASCII scene references, followed through includes."""

from __future__ import annotations

from pathlib import Path

from thresher.engines.references import references


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_povray_includes_and_image_maps_are_followed(tmp_path: Path) -> None:
    scene = _write(
        tmp_path / "scene.pov",
        '#include "colors.inc"\n#include "inc/ball.inc"\n'
        'plane { y, 0 pigment { image_map { png "tex/floor.png" } } }\n',
    )
    _write(tmp_path / "inc" / "ball.inc", '#include "inc/deep.inc"\n')
    _write(tmp_path / "inc" / "deep.inc", "#declare X = 1;\n")
    _write(tmp_path / "tex" / "floor.png", "png")

    found = references(scene)

    assert found == sorted(
        p.resolve()
        for p in (tmp_path / "inc/ball.inc", tmp_path / "inc/deep.inc", tmp_path / "tex/floor.png")
    )


def test_other_formats_name_their_files(tmp_path: Path) -> None:
    _write(tmp_path / "m.mtl", "newmtl a\nmap_Kd -s 1 1 diffuse.png\n")
    _write(tmp_path / "diffuse.png", "x")
    obj = _write(tmp_path / "m.obj", "mtllib m.mtl\nv 0 0 0\n")
    _write(tmp_path / "asset.usd", "x")
    usda = _write(tmp_path / "s.usda", '#usda 1.0\ndef "a" ( references = @./asset.usd@ ) {}\n')
    _write(tmp_path / "plate.exr", "x")
    nk = _write(
        tmp_path / "c.nk", "Read {\n inputs 0\n file plate.exr\n}\nRead {\n file p.####.exr\n}\n"
    )
    _write(tmp_path / "rig.ma", "x")
    ma = _write(tmp_path / "shot.ma", 'file -rdi 1 -ns "rig" -rfn "rigRN" "rig.ma";\n')

    assert [p.name for p in references(obj)] == ["diffuse.png", "m.mtl"]
    assert [p.name for p in references(usda)] == ["asset.usd"]
    assert [p.name for p in references(nk)] == ["plate.exr"]
    assert [p.name for p in references(ma)] == ["rig.ma"]
