"""The real `deadline` CLI (0.60.10, scripts/deadline-client.sh) beyond `bundle submit`, against
a farm of real processes: job list, get, wait (on a success and on a failure), logs, cancel,
requeue-tasks; queue list; farm get and list; fleet list; and an operation Thresher does not
answer, refused naming it."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Farm
from tests.e2e.openjd_support import start_worker, wait_final
from thresher.testing import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.openjd]

FARM_ID = "farm-" + "0123456789abcdef" * 2
QUEUE_ID = "queue-" + "fedcba9876543210" * 2

ECHO = """
specificationVersion: jobtemplate-2023-09
name: Echoes
parameterDefinitions:
- {name: Word, type: STRING, default: hello}
steps:
- name: Say
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-3"}
  script:
    actions:
      onRun: {command: bash, args: ["-c", "echo '{{Param.Word}} {{Task.Param.N}}'"]}
"""
FAIL = """
specificationVersion: jobtemplate-2023-09
name: Breaks
steps:
- name: Good
  script: {actions: {onRun: {command: "true"}}}
- name: Bad
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-2"}
  script:
    actions:
      onRun:
        command: bash
        args: ["-c", "echo 'broken {{Task.Param.N}}'; exit $(({{Task.Param.N}} * 3 - 3))"]
"""
SLEEP = """
specificationVersion: jobtemplate-2023-09
name: Sleeps
steps:
- name: Nap
  script: {actions: {onRun: {command: sleep, args: ["300"]}}}
"""


def cli() -> str:
    path = os.environ.get("THRESHER_DEADLINE_CLI")
    if not path or not os.access(path, os.X_OK):
        pytest.skip(
            "THRESHER_DEADLINE_CLI is not set: run scripts/deadline-client.sh DIR and export "
            "THRESHER_DEADLINE_CLI=DIR/bin/deadline"
        )
    return path


class Deadline:
    """Runs the `deadline` CLI against the farm with one access key and a HOME of its own."""

    def __init__(self, farm: Farm, home: Path, key: dict[str, str]) -> None:
        self.farm, self.home, self.key = farm, home, key

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "AWS_ENDPOINT_URL_DEADLINE": f"{self.farm.url}/deadline",
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": f"{self.farm.url}/deadline-logs",
            "AWS_ENDPOINT_URL_S3": f"{self.farm.url}/deadline-s3",
            "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
            "AWS_ACCESS_KEY_ID": self.key["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": self.key["secret_access_key"],
            "AWS_DEFAULT_REGION": "us-west-2",
            "DEADLINE_CLOUD_TELEMETRY_OPT_OUT": "true",
        }

    def __call__(
        self, *args: str, ids: int = 2, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `deadline ARGS` with the farm id (ids >= 1) and the queue id (ids == 2)."""
        ids_given = ["--farm-id", FARM_ID, "--queue-id", QUEUE_ID][: ids * 2]
        return subprocess.run(
            [cli(), *args, *ids_given],
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, ids: int = 2) -> str:
        done = self(*args, ids=ids)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def submit(self, folder: Path, template: str, *options: str) -> str:
        folder.mkdir()
        (folder / "template.yaml").write_text(template)
        out = self.ok("bundle", "submit", str(folder), "--yes", *options)
        ref = out.split()[-1]
        assert ref.startswith("job-")
        return ref


@pytest.fixture(scope="module")
def deadline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deadline]:
    cli()
    tmp = tmp_path_factory.mktemp("deadline-cli")
    farm = Farm(tmp, None)
    try:
        farm.controller()
        start_worker(farm, "d1", lanes=2)
        with farm.client() as client:
            key = client.create_access_key("artist")
        home = tmp / "home"
        home.mkdir()
        yield Deadline(farm, home, key)
    finally:
        farm.stop_all()


def thresher_id(ref: str) -> int:
    return int(ref[4:], 16)


def test_a_job_is_listed_waited_for_and_its_logs_read(deadline: Deadline, tmp_path: Path) -> None:
    ref = deadline.submit(tmp_path / "echo", ECHO, "--priority", "70")

    waited = deadline.ok("job", "wait", "--job-id", ref, "--max-poll-interval", "1")
    assert "SUCCEEDED" in waited

    listed = deadline.ok("job", "list")
    assert "Displaying" in listed
    assert ref in listed
    assert "startedAt:" in listed
    assert "Echoes" in listed

    got = deadline.ok("job", "get", "--job-id", ref)
    assert "taskRunStatus: SUCCEEDED" in got
    assert "startedAt:" in got
    assert "priority: 70" in got

    found = deadline.ok("job", "get", "Echo")  # a search term: SearchJobs
    assert ref in found

    logs = deadline.ok("job", "logs", "--job-id", ref, "--output", "verbose")
    assert "Using the latest session" in logs
    said = [line for line in logs.splitlines() if "hello " in line]
    assert len(said) == 1  # the latest session: one task's run
    assert said[0].startswith("[")
    as_json = json.loads(deadline.ok("job", "logs", "--job-id", ref, "--output", "json"))
    assert as_json["jobName"] == "Echoes"
    assert any(e["message"].startswith("hello ") for e in as_json["events"])


def test_waiting_on_a_failed_job_names_its_failed_task_and_requeue_runs_it_again(
    deadline: Deadline, tmp_path: Path
) -> None:
    ref = deadline.submit(tmp_path / "fail", FAIL, "--max-retries-per-task", "0")
    [job] = wait_final(deadline.farm, [thresher_id(ref)], timeout=60).values()
    assert job.status == "failed"

    waited = deadline("job", "wait", "--job-id", ref, "--output", "json")
    assert waited.returncode == 2, waited.stdout + waited.stderr  # the CLI's "job failed"
    result = json.loads(waited.stdout)
    assert result["status"] == "FAILED"
    failed = result["failedTasks"]
    assert [t["stepName"] for t in failed] == ["Bad"]  # N=2 fails, N=1 succeeds
    assert all(t["sessionId"].startswith("session-") for t in failed)
    session = failed[0]["sessionId"]
    logs = deadline.ok("job", "logs", "--job-id", ref, "--session-id", session)
    assert any(e["message"].startswith("broken ") for e in json.loads(logs)["events"])

    with deadline.farm.client() as client:
        before = len(client.attempts(thresher_id(ref)))
    requeued = deadline.ok("job", "requeue-tasks", "--job-id", ref, "--yes")
    assert "Requeued a total of 1 tasks." in requeued
    with deadline.farm.client() as client:
        wait_until(
            lambda: (
                len(client.attempts(thresher_id(ref))) == before + 1
                and client.job(thresher_id(ref)).status == "failed"
            ),
            timeout=60,
            what=f"the failed task ran again: {client.why(thresher_id(ref))}, "
            f"{client.attempts(thresher_id(ref))}",
        )


def test_a_job_is_canceled_and_its_settings_are_changed(deadline: Deadline, tmp_path: Path) -> None:
    ref = deadline.submit(
        tmp_path / "sleep", SLEEP, "--max-failed-tasks-count", "5", "--max-worker-count", "1"
    )
    job_id = thresher_id(ref)
    with deadline.farm.client() as client:
        wait_until(lambda: client.job(job_id).status == "running", timeout=30, what="running")
        assert client.job(job_id).max_running == 1
    got = deadline.ok("job", "get", "--job-id", ref)
    assert "maxFailedTasksCount: 5" in got
    assert "maxWorkerCount: 1" in got

    canceled = deadline.ok("job", "cancel", "--job-id", ref, "--yes")
    assert "Canceling job..." in canceled
    [job] = wait_final(deadline.farm, [job_id], timeout=30).values()
    assert job.status == "canceled"
    assert "taskRunStatus: CANCELED" in deadline.ok("job", "get", "--job-id", ref)


def test_farm_queue_and_fleet_are_listed(deadline: Deadline) -> None:
    farms = deadline.ok("farm", "list", ids=0)
    assert "farmId: farm-" in farms
    assert "Thresher" in farms
    farm = deadline.ok("farm", "get", ids=1)
    assert FARM_ID in farm
    queues = deadline.ok("queue", "list", ids=1)
    assert "queueId: queue-" in queues
    assert "displayName: Thresher" in queues
    fleets = deadline.ok("fleet", "list", ids=1)
    assert "fleetId: fleet-" in fleets
    assert "displayName: Thresher workers" in fleets


def test_an_operation_thresher_does_not_answer_is_refused_naming_it(deadline: Deadline) -> None:
    answer = signed(deadline, "POST", f"/deadline/2023-10-12/farms/{FARM_ID}/fleets", {})
    assert answer.status_code == 501
    assert answer.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "CreateFleet" in answer.json()["message"]
    unsigned = httpx.post(f"{deadline.farm.url}/deadline/2023-10-12/farms/{FARM_ID}/fleets")
    assert unsigned.status_code == 403  # nothing is said to a caller who did not sign


VENV = """
specificationVersion: environment-2023-09
environment:
  name: StudioVenv
  script:
    actions:
      onEnter: {command: bash, args: ["-c", "echo 'openjd_env: STUDIO_ENV=entered'"]}
"""
SAY_ENV = """
specificationVersion: jobtemplate-2023-09
name: SaysEnv
steps:
- name: Say
  script: {actions: {onRun: {command: bash, args: ["-c", "echo studio=$STUDIO_ENV"]}}}
"""


def test_queue_environments_apply_to_jobs_submitted_through_deadline(
    deadline: Deadline, tmp_path: Path
) -> None:
    path = f"/deadline/2023-10-12/farms/{FARM_ID}/queues/{QUEUE_ID}/environments"
    refused = signed(
        deadline, "POST", path, {"priority": 1, "templateType": "YAML", "template": VENV}
    )
    assert refused.status_code == 403  # an artist's key: only admins add queue environments
    with deadline.farm.client() as client:
        admin = Deadline(deadline.farm, deadline.home, client.create_access_key("ops", "admin"))
    made = signed(admin, "POST", path, {"priority": 1, "templateType": "YAML", "template": VENV})
    assert made.status_code == 200, made.text
    env_id = made.json()["queueEnvironmentId"]
    listed = signed(deadline, "GET", path).json()["environments"]
    assert listed == [{"queueEnvironmentId": env_id, "name": "StudioVenv", "priority": 1}]

    ref = deadline.submit(tmp_path / "env", SAY_ENV)
    [job] = wait_final(deadline.farm, [thresher_id(ref)], timeout=60).values()
    assert job.status == "succeeded"
    logs = deadline.ok("job", "logs", "--job-id", ref, "--output", "verbose")
    assert "studio=entered" in logs
    assert signed(admin, "DELETE", f"{path}/{env_id}").status_code == 200
    assert signed(deadline, "GET", path).json()["environments"] == []


def signed(deadline: Deadline, method: str, path: str, body: Any = None) -> httpx.Response:
    """A request signed with the access key, as botocore signs one (through the CLI's venv)."""
    script = (
        "import sys, json, botocore.session, botocore.awsrequest, botocore.auth\n"
        "m, url, body = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "creds = botocore.session.get_session().get_credentials()\n"
        "req = botocore.awsrequest.AWSRequest(method=m, url=url, data=body or None,\n"
        "    headers={'content-type': 'application/json'})\n"
        "botocore.auth.SigV4Auth(creds, 'deadline', 'us-west-2').add_auth(req)\n"
        "print(json.dumps(dict(req.headers.items())))\n"
    )
    python = str(Path(cli()).with_name("python"))
    text = json.dumps(body) if body is not None else ""
    url = f"{deadline.farm.url}{path}"
    done = subprocess.run(
        [python, "-c", script, method, url, text],
        env=deadline.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    headers = json.loads(done.stdout)
    return httpx.request(method, url, headers=headers, content=text.encode(), timeout=30)


def boto(deadline: Deadline, script: str) -> Any:
    """Run `script` with a boto3 `deadline` client (`client`) in the CLI's virtualenv; it
    prints one JSON document."""
    python = str(Path(cli()).with_name("python"))
    prelude = (
        "import json, boto3, datetime\n"
        "client = boto3.Session().client('deadline')\n"
        f"FARM, QUEUE = {FARM_ID!r}, {QUEUE_ID!r}\n"
    )
    done = subprocess.run(
        [python, "-c", prelude + script],
        env=deadline.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_sessions_statistics_sum_up_run_times_by_job_and_user(
    deadline: Deadline, tmp_path: Path
) -> None:
    ref = deadline.submit(tmp_path / "stats", ECHO)
    wait_final(deadline.farm, [thresher_id(ref)], timeout=60)
    found = boto(
        deadline,
        "now = datetime.datetime.now(datetime.timezone.utc)\n"
        "started = client.start_sessions_statistics_aggregation(farmId=FARM,\n"
        "    resourceIds={'queueIds': [QUEUE]}, startTime=now - datetime.timedelta(hours=1),\n"
        "    endTime=now + datetime.timedelta(minutes=1), groupBy=['JOB_ID', 'USER_ID'],\n"
        "    statistics=['SUM', 'MAX'])\n"
        "got = client.get_sessions_statistics_aggregation(farmId=FARM,\n"
        "    aggregationId=started['aggregationId'])\n"
        "print(json.dumps(got, default=str))\n",
    )
    assert found["status"] == "COMPLETED"
    [mine] = [s for s in found["statistics"] if s["jobId"] == ref]
    assert (mine["userId"], mine["jobName"], mine["count"]) == ("artist", "Echoes", 3)
    assert set(mine["runtimeInSeconds"]) == {"sum", "max"}
    assert 0 < mine["runtimeInSeconds"]["max"] <= mine["runtimeInSeconds"]["sum"]


WRITES = """
specificationVersion: jobtemplate-2023-09
name: Writes
parameterDefinitions:
- {name: OutDir, type: PATH, objectType: DIRECTORY, dataFlow: OUT}
- {name: Plate, type: PATH, objectType: FILE, dataFlow: IN}
steps:
- name: Write
  parameterSpace:
    taskParameterDefinitions:
    - {name: N, type: INT, range: "1-2"}
  script:
    actions:
      onRun:
        command: bash
        args:
        - -c
        - >-
          mkdir -p '{{Param.OutDir}}/frames' &&
          echo 'frame {{Task.Param.N}}' > '{{Param.OutDir}}/frames/f{{Task.Param.N}}.txt' &&
          head -c 300000 /dev/urandom > '{{Param.OutDir}}/blob{{Task.Param.N}}.bin' &&
          cp '{{Param.Plate}}' '{{Param.OutDir}}/plate.txt'
"""


def uploads(farm: Farm) -> int:
    """PutObject and multipart upload requests the attachments endpoint answered so far."""
    text = httpx.get(f"{farm.url}/metrics", headers={"Authorization": f"Bearer {farm.token}"}).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("thresher_request_seconds_count{")
        and 'route="/deadline-s3/' in line
        and ('method="PUT"' in line or 'method="POST"' in line)
    )


def test_download_output_brings_the_jobs_files_and_only_to_those_who_may_see_them(
    deadline: Deadline, tmp_path: Path
) -> None:
    out = tmp_path / "share" / "out"
    with deadline.farm.client() as client:
        client.set_volume("dl", {"hq": {"*": str(tmp_path / "share")}})
    (tmp_path / "share").mkdir()
    # the main site's Linux storage profile, set as the documentation says, in a home of its own
    script = (
        "found = client.list_storage_profiles_for_queue(farmId=FARM, queueId=QUEUE)\n"
        "def code(call, **kw):\n"
        "    try:\n"
        "        call(farmId=FARM, queueId=QUEUE, **kw)\n"
        "    except Exception as exc:\n"
        "        return exc.response['Error']['Code']\n"
        "none = 'sp-' + '0' * 32\n"
        "print(json.dumps({'profiles': found['storageProfiles'],\n"
        "    'get': code(client.get_storage_profile_for_queue, storageProfileId=none),\n"
        "    'create': code(client.create_job, template='{}', templateType='JSON',\n"
        "        priority=50, storageProfileId=none)}))\n"
    )
    answers = boto(deadline, script)
    assert (answers["get"], answers["create"]) == (
        "ResourceNotFoundException",
        "ValidationException",
    )
    hq = next(p for p in answers["profiles"] if p["displayName"] == "hq linux")
    profile = hq["storageProfileId"]
    user = Deadline(deadline.farm, tmp_path / "home", deadline.key)
    user.home.mkdir()
    for setting, value in (("defaults.farm_id", FARM_ID), ("settings.storage_profile_id", profile)):
        assert user("config", "set", setting, value, ids=0).returncode == 0
    # an input under the volume root: bundle submit uploads nothing (the root is SHARED); the
    # job copies it out, so download-output fetches it in byte ranges
    plate = tmp_path / "share" / "plate.txt"
    plate.write_bytes(os.urandom(9 * 2**20 + 7))
    before = uploads(deadline.farm)
    ref = user.submit(tmp_path / "writes", WRITES, "-p", f"OutDir={out}", "-p", f"Plate={plate}")
    assert uploads(deadline.farm) == before
    script = (
        f"job = client.get_job(farmId=FARM, queueId=QUEUE, jobId={ref!r})\n"
        "print(json.dumps(job.get('storageProfileId')))"
    )
    assert boto(deadline, script) == profile
    # an input outside every root is uploaded as before (checked, dropped): in parts, over 8 MiB
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(os.urandom(9 * 2**20 + 7))
    user.submit(tmp_path / "writes2", WRITES, "-p", f"OutDir={out}2", "-p", f"Plate={elsewhere}")
    assert uploads(deadline.farm) >= before + 4  # manifest, create, 2 parts, complete
    waited = user.ok("job", "wait", "--job-id", ref, "--max-poll-interval", "1")
    assert "SUCCEEDED" in waited

    # bundle submit --yes left settings.auto_accept on in this home: asked again, the folder
    # is chosen (the job's and local storage profile are one, so no path is mapped)
    assert user("config", "set", "settings.auto_accept", "false", ids=0).returncode == 0
    fresh = tmp_path / "fresh"
    confirm = json.dumps({"messageType": "pathconfirm", "value": [str(fresh)]}) + "\n"
    done = user("job", "download-output", "--job-id", ref, "--output", "json", stdin=confirm)
    assert done.returncode == 0, done.stdout + done.stderr
    wrote = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    got = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert (
        got
        == wrote
        == sorted(
            Path(p)
            for p in ["blob1.bin", "blob2.bin", "frames/f1.txt", "frames/f2.txt", "plate.txt"]
        )
    )
    assert all((fresh / p).read_bytes() == (out / p).read_bytes() for p in wrote)

    # bob (another artist, no group shared) gets queue credentials too, but they read nothing
    # of this job; an access key itself reads nothing there
    with deadline.farm.client() as client:
        bob = Deadline(deadline.farm, deadline.home, client.create_access_key("bob"))
    blob_hash = xxh128((out / "blob1.bin").read_bytes())
    job_prefix = f"attachments/Manifests/{FARM_ID}/{QUEUE_ID}/{ref}/"
    script = (
        "from deadline.client import api\n"
        "session = api.get_queue_user_boto3_session(client, farm_id=FARM, queue_id=QUEUE)\n"
        "s3 = session.client('s3')\n"
        "plain = boto3.Session().client('s3')\n"
        "def status(call, **kw):\n"
        "    try:\n"
        "        call(Bucket='thresher', **kw)\n"
        "        return 200\n"
        "    except Exception as exc:\n"
        "        return exc.response['ResponseMetadata']['HTTPStatusCode']\n"
        f"data = 'attachments/Data/{blob_hash}.xxh128'\n"
        "print(json.dumps({'data': status(s3.get_object, Key=data),\n"
        f"    'list': status(s3.list_objects_v2, Prefix={job_prefix!r}),\n"
        "    'plain': status(plain.get_object, Key=data),\n"
        "    'abort': status(s3.abort_multipart_upload, Key=data, UploadId='u')}))\n"
    )
    assert boto(bob, script) == {"data": 404, "list": 404, "plain": 403, "abort": 200}
    assert boto(deadline, script) == {"data": 200, "list": 200, "plain": 403, "abort": 200}


def xxh128(data: bytes) -> str:
    xxhash = pytest.importorskip("xxhash")
    return str(xxhash.xxh3_128_hexdigest(data))
