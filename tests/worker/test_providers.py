"""Providers run real commands: a command template (argv lists, the credential in the
environment) and kubectl, which is faked by a script here (no cluster can be reached): the
manifests it is given are checked instead."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from thresher.worker.providers import (
    CODE,
    TOKEN,
    CommandProvider,
    Credential,
    KubernetesProvider,
    WorkerTemplate,
    pod_manifest,
)

TEMPLATE = WorkerTemplate(
    controller_url="http://farm:8420", pools=("gpu",), lanes=2, labels={"cloud": "aws"}
)


def test_the_command_template_gets_count_names_and_the_credential_by_env(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    record = (
        f'echo "$0 $1 $2 url=$THRESHER_URL token=$THRESHER_TOKEN codes=$THRESHER_ENROL_CODES"'
        f" >> {calls}"
    )
    provider = CommandProvider(
        TEMPLATE,
        start=["sh", "-c", record, "start", "{count}", "{names}"],
        stop=["sh", "-c", record, "stop", "{worker}", "{pool}"],
    )
    provider.start(["gpu-1", "gpu-2"], credentials=[Credential(TOKEN, "thr_enrol_s3cret")] * 2)
    provider.start(
        ["gpu-3", "gpu-4"], credentials=[Credential(CODE, "C-1"), Credential(CODE, "C-2")]
    )
    provider.stop("gpu-1")
    assert calls.read_text().splitlines() == [
        "start 2 gpu-1,gpu-2 url=http://farm:8420 token=thr_enrol_s3cret codes=",
        "start 2 gpu-3,gpu-4 url=http://farm:8420 token= codes=C-1,C-2",
        "stop gpu-1 gpu url=http://farm:8420 token= codes=",
    ]


def test_a_failing_command_is_an_error_naming_it(tmp_path: Path) -> None:
    provider = CommandProvider(
        TEMPLATE, start=["sh", "-c", "echo no quota >&2; exit 3"], stop=["true"]
    )
    with pytest.raises(RuntimeError, match="exited 3: no quota"):
        provider.start(["x"], credentials=[Credential(TOKEN, "t")])


def test_a_pod_reads_its_token_from_a_secret_and_runs_the_worker() -> None:
    pod = pod_manifest("gpu-1", TEMPLATE, image="studio/thresher:1", gpus=1)
    (container,) = pod["spec"]["containers"]
    assert container["args"][:3] == ["worker", "--name", "gpu-1"]
    assert container["args"][container["args"].index("--pool") :][:2] == ["--pool", "gpu"]
    token = next(e for e in container["env"] if e["name"] == "THRESHER_TOKEN")
    assert token == {
        "name": "THRESHER_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "thresher-enrol", "key": "token"}},
    }
    assert container["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert "s3cret" not in json.dumps(pod)


def test_kubernetes_applies_pods_and_deletes_them_with_kubectl(tmp_path: Path) -> None:
    log = tmp_path / "kubectl.log"
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "ARGS $*" >> {log}\ncat >> {log}\necho >> {log}\n')
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    provider = KubernetesProvider(TEMPLATE, image="studio/thresher:1", kubectl=[str(kubectl)])
    provider.start(["gpu-1", "gpu-2"], credentials=[Credential(TOKEN, "thr_enrol_s3cret")] * 2)
    provider.start(["gpu-3"], credentials=[Credential(CODE, "ONE-TIME")])
    provider.stop("gpu-1")
    lines = log.read_text().splitlines()
    assert lines[0] == "ARGS apply -f -"
    applied = json.loads(lines[1])
    assert [p["metadata"]["name"] for p in applied["items"]] == ["gpu-1", "gpu-2"]
    assert "ARGS delete pod gpu-1 -n default --ignore-not-found" in lines
    assert "s3cret" not in log.read_text()
    (pod,) = json.loads(lines[3])["items"]  # a one-time code goes in its pod's environment
    assert {"name": "THRESHER_ENROL_CODE", "value": "ONE-TIME"} in pod["spec"]["containers"][0][
        "env"
    ]
