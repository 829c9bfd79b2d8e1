"""Where an autoscaler's workers come from: local processes, any cloud's command line, or
Kubernetes pods. A provider only starts and stops workers by name; deciding is
`core.autoscale`'s, watching the farm `worker.autoscaler`'s.

Every worker started gets the controller's URL and its enrolment credential in its environment
(`THRESHER_URL`, and `THRESHER_ENROL_CODE`: a one-time code of its own, or `THRESHER_TOKEN`: an
enrolment token), never on a command line that `ps` shows; a Kubernetes pod reads an enrolment
token from a Secret.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "CODE",
    "TOKEN",
    "CommandProvider",
    "Credential",
    "KubernetesProvider",
    "LocalProvider",
    "Provider",
    "WorkerTemplate",
    "pod_manifest",
]

log = logging.getLogger("thresher.autoscale")

DEFAULT_SECRET = "thresher-enrol"  # noqa: S105 (the Secret's name, not a secret)


TOKEN = "THRESHER_TOKEN"  # noqa: S105 (the variable's name)
CODE = "THRESHER_ENROL_CODE"


@dataclass(frozen=True)
class Credential:
    """What one new worker enrols with, as the variable `thresher worker` reads it from."""

    variable: str  # TOKEN or CODE
    value: str = field(repr=False)


@dataclass(frozen=True)
class WorkerTemplate:
    """What every worker of a group is started with."""

    controller_url: str
    pools: tuple[str, ...] = ()
    site: str = "hq"
    lanes: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    lane_engines: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    # The machine a provider starts, as filters see it (`ram:>32g`, `cores:>=8`, `gpu:>0`):
    # its workers detect their own facts; these only decide which blocks it could serve.
    cores: int = 1
    ram_bytes: int = 0
    gpus: int = 0
    os: str = "linux"

    def worker_args(self, name: str) -> list[str]:
        """`thresher worker` options for a worker named `name` (URL and token go by env)."""
        args = ["--name", name, "--lanes", str(self.lanes), "--site", self.site]
        for pool in self.pools:
            args += ["--pool", pool]
        for key, value in sorted(self.labels.items()):
            args += ["--label", f"{key}={value}"]
        for lane, engines in sorted(self.lane_engines.items()):
            args += ["--lane-engines", f"{lane}={','.join(engines)}"]
        return args


class Provider(Protocol):
    def start(self, names: Sequence[str], *, credentials: Sequence[Credential]) -> None:
        """Start one worker per name, each enrolling with its credential."""
        ...

    def stop(self, name: str) -> None:
        """Stop the worker (after the autoscaler drained it), or forget one that never came."""
        ...


class LocalProvider:
    """`thresher worker` processes on this machine (a workstation farm, and the tests)."""

    def __init__(self, template: WorkerTemplate, *, work_root: Path, grace_s: float = 10.0) -> None:
        self.template = template
        self.work_root = work_root
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._exe = str(Path(sys.executable).with_name("thresher"))

    def start(self, names: Sequence[str], *, credentials: Sequence[Credential]) -> None:
        base = {k: v for k, v in os.environ.items() if k not in (TOKEN, CODE)}
        for name, credential in zip(names, credentials, strict=True):
            env = {
                **base,
                "THRESHER_URL": self.template.controller_url,
                credential.variable: credential.value,
            }
            work = self.work_root / name
            work.mkdir(parents=True, exist_ok=True)
            argv = [self._exe, "worker", *self.template.worker_args(name), "--work-dir", str(work)]
            with (work / "worker.log").open("ab") as out:
                self.procs[name] = subprocess.Popen(
                    argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            log.info("started worker %s (pid %s)", name, self.procs[name].pid)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # the worker says goodbye; its tasks get the grace
        try:
            proc.wait(timeout=self.grace_s + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def kill(self, name: str) -> None:
        """SIGKILL, as a cloud reclaiming a spot instance would (tests)."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def _expand(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


class CommandProvider:
    """Any cloud through its command line: `start` and `stop` are argv templates (never a
    shell string) with `{count}`, `{names}` (comma-separated), `{pool}` and `{worker}`; the
    command gets THRESHER_URL, THRESHER_WORKER_NAMES and the credentials in its environment:
    THRESHER_ENROL_CODES (one-time codes, comma-separated, one per name in order) or
    THRESHER_TOKEN (an enrolment token), for a start-up script to pass to `thresher worker`."""

    def __init__(
        self,
        template: WorkerTemplate,
        *,
        start: Sequence[str],
        stop: Sequence[str],
        timeout_s: float = 300.0,
    ) -> None:
        if not start or not stop:
            raise ValueError("the start and stop commands must name a program")
        self.template = template
        self.start_argv = list(start)
        self.stop_argv = list(stop)
        self.timeout_s = timeout_s

    def start(self, names: Sequence[str], *, credentials: Sequence[Credential]) -> None:
        values = {
            "count": str(len(names)),
            "names": ",".join(names),
            "pool": ",".join(self.template.pools),
        }
        env = {k: v for k, v in os.environ.items() if k not in (TOKEN, CODE)}
        env.update(THRESHER_URL=self.template.controller_url)
        env["THRESHER_WORKER_NAMES"] = ",".join(names)
        codes = [c.value for c in credentials if c.variable == CODE]
        if codes:
            env["THRESHER_ENROL_CODES"] = ",".join(codes)
        else:
            env[TOKEN] = credentials[0].value if credentials else ""
        self._run(_expand(self.start_argv, values), env)

    def stop(self, name: str) -> None:
        values = {"worker": name, "pool": ",".join(self.template.pools)}
        env = {k: v for k, v in os.environ.items() if k != "THRESHER_TOKEN"}
        self._run(
            _expand(self.stop_argv, values), {**env, "THRESHER_URL": self.template.controller_url}
        )

    def _run(self, argv: list[str], env: dict[str, str]) -> None:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=self.timeout_s, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-500:]}")


def pod_manifest(
    name: str,
    template: WorkerTemplate,
    *,
    image: str,
    namespace: str = "default",
    token_secret: str = DEFAULT_SECRET,
    gpus: int = 0,
    code: str | None = None,
) -> dict[str, Any]:
    """A Kubernetes Pod running one `thresher worker`: it enrols with its one-time `code`, or
    with the enrolment token of a Secret (key `token`), which the manifest never holds."""
    resources: dict[str, Any] = {}
    if gpus:
        resources = {"limits": {"nvidia.com/gpu": gpus}}
    pool_label = template.pools[0] if template.pools else "any"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "thresher-worker", "thresher/pool": pool_label},
        },
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 60,
            "containers": [
                {
                    "name": "worker",
                    "image": image,
                    "args": ["worker", *template.worker_args(name)],
                    "env": [
                        {"name": "THRESHER_URL", "value": template.controller_url},
                        {"name": CODE, "value": code}
                        if code
                        else {
                            "name": TOKEN,
                            "valueFrom": {"secretKeyRef": {"name": token_secret, "key": "token"}},
                        },
                    ],
                    "resources": resources,
                }
            ],
        },
    }


class KubernetesProvider:
    """One Pod per worker, applied and deleted with `kubectl` (its argv prefix is given, so a
    context or a kubeconfig can be named). The token must already be in the Secret."""

    def __init__(
        self,
        template: WorkerTemplate,
        *,
        image: str,
        kubectl: Sequence[str] = ("kubectl",),
        namespace: str = "default",
        token_secret: str = DEFAULT_SECRET,
        gpus: int = 0,
    ) -> None:
        if shutil.which(kubectl[0]) is None and not Path(kubectl[0]).exists():
            raise ValueError(f"{kubectl[0]} is not on PATH")
        self.template = template
        self.image = image
        self.kubectl = list(kubectl)
        self.namespace = namespace
        self.token_secret = token_secret
        self.gpus = gpus

    def start(self, names: Sequence[str], *, credentials: Sequence[Credential]) -> None:
        items = [
            pod_manifest(
                n,
                self.template,
                image=self.image,
                namespace=self.namespace,
                token_secret=self.token_secret,
                gpus=self.gpus,
                code=c.value if c.variable == CODE else None,  # a token: from the Secret
            )
            for n, c in zip(names, credentials, strict=True)
        ]
        manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        self._run(["apply", "-f", "-"], manifest)

    def stop(self, name: str) -> None:
        self._run(["delete", "pod", name, "-n", self.namespace, "--ignore-not-found"], None)

    def _run(self, args: list[str], stdin: str | None) -> None:
        done = subprocess.run(
            [*self.kubectl, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {args[0]} exited {done.returncode}: {done.stderr[-500:]}")
