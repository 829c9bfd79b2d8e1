"""A job's outputs as job attachments (routes/deadline/outputs.py): only folders inside a volume
root are read, symlinks are neither followed out nor listed, and a file is served by its hash
only while it is the very file that was hashed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import xxhash

from thresher.controller.routes.deadline.outputs import OutputIndex, open_unchanged


def test_only_files_inside_a_served_root_are_listed_and_hashed(tmp_path: Path) -> None:
    share, elsewhere = tmp_path / "share", tmp_path / "elsewhere"
    (share / "out" / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret").write_bytes(b"secret")
    (share / "out" / "a.exr").write_bytes(b"pixels")
    (share / "out" / "sub" / "b.txt").write_bytes(b"")
    (share / "out" / "link").symlink_to(elsewhere / "secret")
    (share / "out" / "dirlink").symlink_to(elsewhere)
    (share / "escape").symlink_to(elsewhere)
    index = OutputIndex()
    roots = [os.path.realpath(share)]

    dirs = [str(share / "out"), str(elsewhere), str(share / "escape"), "relative/out"]
    [root] = index.scan(7, dirs, roots)
    assert root.root == str(share / "out")
    assert {f.rel: f.hash for f in root.files} == {
        "a.exr": xxhash.xxh3_128_hexdigest(b"pixels"),
        "sub/b.txt": xxhash.xxh3_128_hexdigest(b""),
    }
    manifest = json.loads(root.manifest())
    assert manifest["hashAlg"] == "xxh128"
    assert manifest["totalSize"] == 6
    assert [p["path"] for p in manifest["paths"]] == ["a.exr", "sub/b.txt"]
    assert index.where(xxhash.xxh3_128_hexdigest(b"secret")) == []


def test_a_file_changed_or_replaced_since_it_was_hashed_is_not_served(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    frame = out / "f.exr"
    frame.write_bytes(b"first")
    index = OutputIndex()
    index.scan(1, [str(out)], [str(tmp_path.resolve())])
    [(job_id, file)] = index.where(xxhash.xxh3_128_hexdigest(b"first"))
    assert job_id == 1
    stream = open_unchanged(file)
    assert stream is not None
    with stream:
        assert stream.read() == b"first"

    frame.write_bytes(b"other")  # same size, new mtime (or not): a new content
    os.utime(frame, ns=(file.mtime_ns, file.mtime_ns))
    moved = tmp_path / "moved"
    frame.rename(moved)
    frame.symlink_to(moved)
    assert open_unchanged(file) is None  # a symlink now
    frame.unlink()
    frame.write_bytes(b"first")  # the same bytes, another file (inode)
    os.utime(frame, ns=(file.mtime_ns, file.mtime_ns))
    moved.unlink()
    if os.stat(frame).st_ino != file.ident[1]:
        assert open_unchanged(file) is None
