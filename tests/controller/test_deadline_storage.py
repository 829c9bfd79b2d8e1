"""Storage profiles (routes/deadline/storage.py): one per site and OS family, the site's volume
roots for that OS as SHARED locations, ids stable across calls and distinct per site and OS."""

from __future__ import annotations

from typing import cast

from thresher.controller.routes.deadline.storage import profile_id, profiles
from thresher.controller.sites import Sites
from thresher.core.volumes import Volume
from thresher.store.sites import SiteRecord


class _Sites:
    def __init__(self, volumes: dict[str, Volume], declared: list[str]) -> None:
        self._volumes, self._declared = volumes, declared

    def volumes(self) -> dict[str, Volume]:
        return self._volumes

    def main_site(self) -> str:
        return "hq"

    def sites(self) -> list[tuple[SiteRecord, int]]:
        return [(SiteRecord(n, "", False, None, None, 4, 0.0), 0) for n in self._declared]


def test_each_site_and_os_has_a_profile_of_its_volume_roots_all_shared() -> None:
    volumes = {
        "proj": Volume("proj", {"hq": {"linux": "/mnt/proj", "windows": "P:\\"}}),
        "lib": Volume("lib", {"hq": {"*": "/lib"}, "paris": {"*": "/srv/lib"}}),
    }
    found = profiles(cast(Sites, _Sites(volumes, ["berlin"])))
    by_name = {p["displayName"]: p for p in found}
    os_names = ("linux", "windows", "macos")
    # the main site first; a site named only by a volume or only declared is there too
    assert [p["displayName"] for p in found][:3] == ["hq linux", "hq windows", "hq macos"]
    assert set(by_name) == {f"{s} {o}" for s in ("hq", "berlin", "paris") for o in os_names}
    assert by_name["hq linux"]["fileSystemLocations"] == [
        {"name": "lib", "path": "/lib", "type": "SHARED"},
        {"name": "proj", "path": "/mnt/proj", "type": "SHARED"},
    ]
    assert by_name["hq windows"]["fileSystemLocations"][1]["path"] == "P:\\"
    assert by_name["hq macos"]["fileSystemLocations"] == [
        by_name["hq linux"]["fileSystemLocations"][0]
    ]
    assert by_name["berlin linux"]["fileSystemLocations"] == []
    assert by_name["paris macos"]["osFamily"] == "MACOS"
    ids = [p["storageProfileId"] for p in found]
    assert len(set(ids)) == len(ids) == 9
    assert by_name["hq linux"]["storageProfileId"] == profile_id("hq", "LINUX")
    assert all(i.startswith("sp-") and len(i) == 35 for i in ids)
