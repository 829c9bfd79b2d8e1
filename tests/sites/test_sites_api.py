"""Sites and volumes through the API: everyone reads, admins (and wranglers) change; share
paths in a submission are checked against the volumes (a 422 naming the field)."""

from __future__ import annotations

import pytest

from thresher.client import APIError, Client
from thresher.schemas import api
from thresher.testing import ServedController


def test_sites_and_volumes_are_set_read_and_deleted(
    served: ServedController, admin: Client
) -> None:
    admin.set_site("hq", main=True, file_service_url="http://127.0.0.1:9000")
    admin.set_site("sthlm", bandwidth_bps=1_000_000)
    admin.set_volume("proj", {"hq": {"linux": "/mnt/proj"}, "sthlm": {"*": "/data/proj"}})
    user = admin.create_token("alice")

    with Client(served.url, user.token) as alice:
        sites = {s.name: s for s in alice.sites()}
        (volume,) = alice.volumes()
        with pytest.raises(APIError) as refused:
            alice.set_volume("x", {"hq": {"*": "/x"}})

    assert sites["hq"].main
    assert not sites["sthlm"].main
    assert sites["sthlm"].bandwidth_bps == 1_000_000
    assert volume.roots == {"hq": {"linux": "/mnt/proj"}, "sthlm": {"*": "/data/proj"}}
    assert refused.value.status == 403
    admin.set_site("sthlm", main=True)
    assert [s.name for s in admin.sites() if s.main] == ["sthlm"]
    admin.delete_volume("proj")
    assert admin.volumes() == []


def test_a_relative_root_or_a_bad_name_is_refused(admin: Client) -> None:
    with pytest.raises(APIError) as relative:
        admin.set_volume("proj", {"hq": {"linux": "mnt/proj"}})
    with pytest.raises(APIError) as bad_os:
        admin.set_volume("proj", {"hq": {"beos": "/mnt/proj"}})
    with pytest.raises(APIError) as bad_name:
        admin.set_volume("a b", {"hq": {"linux": "/mnt/proj"}})

    assert (relative.value.status, relative.value.field) == (422, "roots.hq.linux")
    assert bad_os.value.status == 422
    assert bad_name.value.status == 422


def test_share_paths_of_a_submission_are_checked(admin: Client) -> None:
    admin.set_volume("proj", {"hq": {"linux": "/mnt/proj"}})
    ok = admin.submit("ok", ["cat", "share=proj/a.txt"])
    with pytest.raises(APIError) as escaping:
        admin.submit("bad", ["cat", "share=proj/../../etc/passwd"])
    with pytest.raises(APIError) as unknown:
        admin.submit_job(
            api_job(engine="povray", input="share=nope/a.pov", dependencies=["share=proj/a.inc"])
        )

    assert ok.id > 0
    assert (escaping.value.status, escaping.value.field) == (422, "command[1]")
    assert (unknown.value.status, unknown.value.field) == (422, "input")


def test_a_jobs_sync_settings_per_site_are_kept(admin: Client) -> None:
    job = admin.submit("j", ["true"])
    admin.set_job_site(job.id, "sthlm", download=False, speed_limit_bps=500)
    changed = admin.set_job_site(job.id, "sthlm", parallel_files=8)

    (row,) = changed.sites
    assert (row.site, row.download, row.upload) == ("sthlm", False, True)
    assert (row.speed_limit_bps, row.parallel_files) == (500, 8)


def api_job(**fields: object) -> api.JobIn:
    return api.JobIn.model_validate({"name": "j", **fields})
