from __future__ import annotations

from typing import Any

import pytest

from thresher.engines import EngineConfigError, PathMapper

RULES: list[dict[str, Any]] = [
    {"remote": "P:\\projects", "local": "/mnt/projects"},
    {"remote": "/Volumes/projects/", "local": "/mnt/projects"},
    {"remote": "/srv/share", "local": "/net/share"},
    {"remote": "/srv/share/cache", "local": "/fast/cache"},
    {"remote": "/mnt/render", "local": "R:\\render", "os": "windows"},
    {"remote": "/mnt/render", "local": "/Volumes/render", "os": "mac"},
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Windows remote: either separator, any case, rest of the path converted
        ("P:\\projects\\shots\\a b.exr", "/mnt/projects/shots/a b.exr"),
        ("p:/PROJECTS/x.blend", "/mnt/projects/x.blend"),
        ("P:\\projects", "/mnt/projects"),
        # trailing separator in a rule is ignored
        ("/Volumes/projects/x.ma", "/mnt/projects/x.ma"),
        # longest prefix first
        ("/srv/share/cache/x", "/fast/cache/x"),
        ("/srv/share/cachet/x", "/net/share/cachet/x"),
        # paths inside arguments and lists
        ("--out=/srv/share/x", "--out=/net/share/x"),
        ("/srv/share/a;/srv/share/cache/b", "/net/share/a;/fast/cache/b"),
        # glued to a short option
        ("+IP:\\projects\\orbit.pov", "+I/mnt/projects/orbit.pov"),
        ("-o/srv/share/f_####", "-o/net/share/f_####"),
        # not on a path boundary: untouched
        ("/srv/shared/x", "/srv/shared/x"),
        ("/home/srv/share/x", "/home/srv/share/x"),
        ("--input/srv/share", "--input/srv/share"),
        ("/srv/share.bak", "/srv/share.bak"),
        # rules for other worker OSes do not apply on Linux
        ("/mnt/render/x.exr", "/mnt/render/x.exr"),
    ],
)
def test_map_argument_on_linux(text: str, expected: str) -> None:
    mapper = PathMapper.from_parameter(RULES, os_name="linux")
    assert mapper.map_argument(text) == expected
    # mapping is idempotent: an already mapped string stays as it is
    assert mapper.map_argument(expected) == expected


@pytest.mark.parametrize(
    ("os_name", "expected"),
    [
        ("windows", "R:\\render\\shot\\f.exr"),
        ("mac", "/Volumes/render/shot/f.exr"),
        ("linux", "/mnt/render/shot/f.exr"),
    ],
)
def test_rules_with_an_os_apply_on_workers_of_that_os(os_name: str, expected: str) -> None:
    mapper = PathMapper.from_parameter(RULES, os_name=os_name)
    assert mapper.map_argument("/mnt/render/shot/f.exr") == expected


def test_map_text_rewrites_every_path_in_a_scene_file() -> None:
    mapper = PathMapper.from_parameter(RULES, os_name="linux")
    scene = (
        '#include "P:\\projects\\inc\\colors.inc"\r\n'
        "file P:/projects/plates/a.####.exr\r\n"
        'setAttr ".ftn" -type "string" "/srv/share/tex/wood.png";\r\n'
        "unrelated /srv/shared/x\r\n"
    )
    assert mapper.map_text(scene) == (
        '#include "/mnt/projects/inc/colors.inc"\r\n'
        "file /mnt/projects/plates/a.####.exr\r\n"
        'setAttr ".ftn" -type "string" "/net/share/tex/wood.png";\r\n'
        "unrelated /srv/shared/x\r\n"
    )


def test_map_text_does_not_treat_glued_options_as_paths() -> None:
    mapper = PathMapper.from_parameter(RULES, os_name="linux")
    assert mapper.map_text("+I/srv/share/x") == "+I/srv/share/x"


def test_posix_remote_to_windows_local_converts_separators() -> None:
    mapper = PathMapper.from_parameter(
        [{"remote": "/mnt/p", "local": "\\\\server\\p"}], os_name="windows"
    )
    assert mapper.map_argument("/mnt/p/shots/a.exr") == "\\\\server\\p\\shots\\a.exr"


def test_no_rules_is_a_no_op() -> None:
    mapper = PathMapper.from_parameter([], os_name="linux")
    assert mapper.rules == ()
    assert mapper.map_text("/anything") == "/anything"
    assert mapper.map_argument("-o/anything") == "-o/anything"


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("P:=/mnt", "must be a list"),
        ([["P:", "/mnt"]], "must be an object"),
        ([{"remote": "P:"}], "non-empty 'remote' and 'local'"),
        ([{"remote": "/", "local": "/mnt"}], "non-empty 'remote' and 'local'"),
        ([{"remote": "/a", "local": "/b", "os": "beos"}], "unknown operating system"),
        ([{"remote": "/a", "local": "/b", "extra": 1}], "unknown keys"),
        (
            [{"remote": "/a", "local": "/b/x"}, {"remote": "/b", "local": "/c"}],
            "rules chain",
        ),
        ([{"remote": "/a", "local": "/a/mirror"}], "rules chain"),
    ],
)
def test_invalid_rules_are_refused(rules: object, message: str) -> None:
    with pytest.raises(EngineConfigError, match=message) as caught:
        PathMapper.from_parameter(rules, os_name="linux")
    assert caught.value.parameter == "mapped_share_paths"
