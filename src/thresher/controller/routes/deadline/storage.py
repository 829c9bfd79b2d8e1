"""Storage profiles: one per site and OS family, its file system locations the site's volume
roots for that OS, all SHARED.

`deadline bundle submit` with a storage profile (`deadline config set
settings.storage_profile_id sp-...`, or `--storage-profile-id`) uploads no input file under a
SHARED location, as against AWS: a bundle whose inputs lie under a volume root sends nothing to
the attachments endpoint, one outside every root is still uploaded (checked and dropped,
s3_uploads.py). Nothing is stored: a profile is made from the sites and volumes each time, its
id a hash of the site's name and the OS family, so it lasts as long as the site's name.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fastapi import APIRouter

from thresher.controller.routes.deadline.common import (
    API,
    AWS_ERRORS,
    SignedCaller,
    iso,
    not_found,
)
from thresher.controller.routes.deps import FarmDep
from thresher.controller.sites import Sites

router = APIRouter(prefix=API + "/farms", tags=["deadline"], responses=AWS_ERRORS)

#: Deadline's OS families and the OS names of Thresher's volume roots.
OS_FAMILIES = {"LINUX": "linux", "WINDOWS": "windows", "MACOS": "mac"}
_ID = re.compile(r"^sp-[0-9a-f]{32}$")


def profile_id(site: str, family: str) -> str:
    digest = hashlib.sha256(f"{site}\0{family}".encode()).hexdigest()
    return f"sp-{digest[:32]}"


def profiles(sites: Sites) -> list[dict[str, Any]]:
    """Every site's profiles (sites declared, named by a worker or by a volume root, and the
    main site), the main site's first; blocking (reads the store)."""
    volumes = sites.volumes()
    main = sites.main_site()
    names = {s.name for s, _ in sites.sites()} | {main}
    for volume in volumes.values():
        names |= set(volume.roots)
    out = []
    for site in sorted(names, key=lambda n: (n != main, n)):
        for family, os_name in OS_FAMILIES.items():
            locations = [
                {"name": name, "path": root, "type": "SHARED"}
                for name, volume in sorted(volumes.items())
                if (root := volume.root_for(site, os_name))
            ]
            out.append(
                {
                    "storageProfileId": profile_id(site, family),
                    "displayName": f"{site} {family.lower()}",
                    "osFamily": family,
                    "fileSystemLocations": locations,
                }
            )
    return out


async def all_profiles(farm: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await farm.call(profiles, farm.sites)
    return found


async def one_profile(farm: Any, storage_profile_id: str) -> dict[str, Any]:
    """The profile of that id, or a 404 (ResourceNotFoundException) naming it."""
    if _ID.match(storage_profile_id):
        for profile in await all_profiles(farm):
            if profile["storageProfileId"] == storage_profile_id:
                return profile
    raise not_found(
        "storage-profile",
        storage_profile_id,
        f"storage profile {storage_profile_id} does not exist: ListStorageProfilesForQueue "
        "lists one per site and OS family",
    )


def _summary(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: profile[k] for k in ("storageProfileId", "displayName", "osFamily")}


@router.get("/{farmId}/storage-profiles")
async def list_storage_profiles(farmId: str, farm: FarmDep, caller: SignedCaller) -> Any:
    return {"storageProfiles": [_summary(p) for p in await all_profiles(farm)]}


@router.get("/{farmId}/storage-profiles/{storageProfileId}")
async def get_storage_profile(
    farmId: str, storageProfileId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    profile = await one_profile(farm, storageProfileId)
    return {**profile, "createdAt": iso(0), "createdBy": "thresher"}


@router.get("/{farmId}/queues/{queueId}/storage-profiles")
async def list_storage_profiles_for_queue(
    farmId: str, queueId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    return {"storageProfiles": [_summary(p) for p in await all_profiles(farm)]}


@router.get("/{farmId}/queues/{queueId}/storage-profiles/{storageProfileId}")
async def get_storage_profile_for_queue(
    farmId: str, queueId: str, storageProfileId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    return await one_profile(farm, storageProfileId)
