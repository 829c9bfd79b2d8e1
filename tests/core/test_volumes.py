"""Share paths: found in any text, normalised, refused when they leave their root, resolved
to a site's root in that root's own separator style."""

from __future__ import annotations

import pytest

from thresher.core.volumes import (
    Volume,
    VolumeError,
    check_refs,
    find_refs,
    resolve_text,
    resolve_value,
    to_share,
)

PROJ = Volume(
    "proj",
    roots={
        "hq": {"linux": "/mnt/proj", "windows": "P:\\"},
        "sthlm": {"*": "/data/proj/"},
    },
)
VOLUMES = {"proj": PROJ}


def test_share_paths_are_found_alone_and_inside_arguments() -> None:
    refs = find_refs("+Ishare=proj/shots/a.pov --out=share=proj/out/f.png myshare=x/y")

    assert [(r.volume, r.rel) for r in refs] == [("proj", "shots/a.pov"), ("proj", "out/f.png")]


@pytest.mark.parametrize(
    "text",
    [
        "share=proj/../etc/passwd",
        "share=proj/a/../../b",
        "share=proj/a\\..\\..\\b",
        "share=proj/..",
    ],
)
def test_a_path_leaving_its_root_is_refused(text: str) -> None:
    with pytest.raises(VolumeError, match=r"backslash|leaves its volume root"):
        find_refs(text, field_name="input")


def test_submit_checks_name_the_field_and_unknown_volumes() -> None:
    with pytest.raises(VolumeError) as bad:
        check_refs({"parameters": {"args": ["-x", "share=proj/../x"]}}, VOLUMES)
    assert bad.value.field == "parameters.args[1]"
    with pytest.raises(VolumeError, match="unknown volume 'other'") as unknown:
        check_refs({"dependencies": ["share=proj/a.inc", "share=other/b"]}, VOLUMES)
    assert unknown.value.field == "dependencies[1]"
    assert len(check_refs({"input": "share=proj/./a//b.pov"}, VOLUMES)) == 1


def test_resolved_to_each_sites_root_in_its_style() -> None:
    linux, _ = resolve_text("+Ishare=proj/s/a.pov", VOLUMES, site="hq", os_name="linux")
    windows, _ = resolve_text("share=proj/s/a.pov", VOLUMES, site="hq", os_name="windows")
    remote, pairs = resolve_text("share=proj/s/a.pov", VOLUMES, site="sthlm", os_name="mac")

    assert linux == "+I/mnt/proj/s/a.pov"
    assert windows == "P:\\s\\a.pov"
    assert remote == "/data/proj/s/a.pov"
    assert pairs == [("/data/proj/", "/data/proj/s/a.pov")]


def test_a_site_without_a_root_cannot_resolve() -> None:
    with pytest.raises(VolumeError, match="no root at site 'tokyo'"):
        resolve_value({"input": "share=proj/a"}, VOLUMES, site="tokyo", os_name="linux")


def test_a_local_path_under_a_root_has_a_share_path() -> None:
    assert (
        to_share("/mnt/proj/s/a.pov", VOLUMES, site="hq", os_name="linux") == "share=proj/s/a.pov"
    )
    assert to_share("/mnt/projects/a", VOLUMES, site="hq", os_name="linux") is None
