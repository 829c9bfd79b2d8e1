"""The engine registry and engine jobs through the real client against a served controller,
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from thresher.client import AgentClient, Client, Forbidden, InvalidRequest, NotFound
from thresher.engines import builtin_engines, source_hash
from thresher.schemas import api
from thresher.testing import ServedController

# A valid engine that is not one of the built-ins.
ECHO_ENGINE = """
from thresher.engines import Engine as Base


class Engine(Base):
    SETTINGS = {"type": "compute", "default_range": "1-3", "filename_extensions": [".txt"]}
    PARAMETERS = {"greeting": "hello"}

    def get_executable(self):
        return "echo"

    def get_commandline(self, task):
        return [self.executable(task), task.parameters["greeting"], task.input or ""]
"""


@pytest.fixture
def user(served: ServedController, admin: Client) -> Iterator[Client]:
    token = admin.create_token("bob", "user").token
    with Client(served.url, token) as client:
        yield client


def _http(served: ServedController, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=served.url, headers=headers)


# -- the registry --------------------------------------------------------------------------------


def test_built_in_engines_are_there_at_revision_0_without_publishing(admin: Client) -> None:
    listed = {e.name: e for e in admin.engines()}
    assert set(builtin_engines()) <= set(listed)
    blender = listed["blender"]
    assert (blender.revision, blender.builtin, blender.enabled, blender.type) == (
        0,
        True,
        True,
        "render",
    )
    assert blender.source_hash == source_hash(builtin_engines()["blender"])
    shown = admin.engine("blender")
    assert shown.source == builtin_engines()["blender"]
    assert [(r.revision, r.current) for r in shown.revisions] == [(0, True)]


def test_each_publish_increments_the_revision_and_show_has_source_and_revisions(
    admin: Client,
) -> None:
    first = admin.publish_engine("echo", ECHO_ENGINE)
    second = admin.publish_engine("echo", ECHO_ENGINE.replace("hello", "hi"))
    assert (first.revision, second.revision, second.latest_revision) == (1, 2, 2)
    shown = admin.engine("echo")
    assert shown.source is not None
    assert '"hi"' in shown.source
    assert shown.parameters == {**shown.parameters, "greeting": "hi"}
    assert [(r.revision, r.current, r.published_by) for r in shown.revisions] == [
        (1, False, "admin"),
        (2, True, "admin"),
    ]
    assert admin.engine_source("echo", 1).source == ECHO_ENGINE
    with pytest.raises(NotFound):
        admin.engine_source("echo", 9)


def test_a_published_engine_overrides_the_built_in_one_and_rollback_restores_it(
    admin: Client,
) -> None:
    custom = builtin_engines()["blender"] + "\n# site tweaks\n"
    published = admin.publish_engine("blender", custom)
    assert (published.revision, published.builtin, published.has_builtin) == (1, False, True)
    rolled = admin.rollback_engine("blender", 0)
    assert (rolled.revision, rolled.builtin, rolled.latest_revision) == (0, True, 1)
    forward = admin.rollback_engine("blender", 1)
    assert forward.source_hash == source_hash(custom)
    with pytest.raises(NotFound, match="no revision 5"):
        admin.rollback_engine("blender", 5)


BROKEN: list[tuple[str, str, str]] = [
    ("syntax", "def broken(:\n", "SyntaxError"),
    ("import", "import thresher_no_such_module\n", "No module named 'thresher_no_such_module'"),
    ("raises", "raise RuntimeError('not today')\n", "RuntimeError: not today"),
    ("no class", "x = 1\n", "defines no class Engine"),
    (
        "bad settings",
        "from thresher.engines import Engine as B\nclass Engine(B):\n"
        "    SETTINGS = {'default_bucketsize': -1}\n",
        "default_bucketsize",
    ),
]


@pytest.mark.parametrize(("label", "text", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_script_that_does_not_load_is_refused_with_the_python_error(
    admin: Client, label: str, text: str, message: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        admin.publish_engine("broken", text)
    assert info.value.status == 422
    assert info.value.field == "source"
    assert message in info.value.message, label
    assert "broken" not in {e.name for e in admin.engines()}


def test_a_bad_engine_name_is_refused(admin: Client) -> None:
    with pytest.raises(InvalidRequest) as info:
        admin.publish_engine("9lives", ECHO_ENGINE)
    assert info.value.field == "name"


def test_changing_the_registry_is_for_admins_and_reading_it_for_everyone(
    admin: Client, user: Client
) -> None:
    admin.publish_engine("echo", ECHO_ENGINE)
    for change in (
        lambda: user.publish_engine("echo", ECHO_ENGINE),
        lambda: user.disable_engine("echo"),
        lambda: user.enable_engine("echo"),
        lambda: user.rollback_engine("echo", 1),
    ):
        with pytest.raises(Forbidden):
            change()
    assert [e.name for e in user.find("engine where name=echo")] == ["echo"]
    assert user.engine("echo").revision == 1


def test_every_engine_route_needs_a_token(served: ServedController) -> None:
    routes = [
        ("GET", "/api/v1/engines"),
        ("GET", "/api/v1/engines/blender"),
        ("GET", "/api/v1/engines/blender/revisions/0"),
        ("POST", "/api/v1/engines/blender/revisions"),
        ("POST", "/api/v1/engines/blender/enable"),
        ("POST", "/api/v1/engines/blender/disable"),
        ("POST", "/api/v1/engines/blender/rollback"),
        ("GET", "/api/v1/agent/engines/blender/0"),
    ]
    with _http(served, None) as http:
        answers = {(m, p): http.request(m, p, json={}).status_code for m, p in routes}
    assert set(answers.values()) == {401}, answers


def test_the_agent_route_gives_workers_a_revision_and_refuses_users(
    served: ServedController, admin: Client, user: Client
) -> None:
    admin.publish_engine("echo", ECHO_ENGINE)

    async def fetch(token: str) -> Any:
        client = AgentClient(served.url, token)
        try:
            registered = await client.register(
                api.RegisterIn(name="w1", hostname="w1", os="linux", cores=1, ram_bytes=1)
            )
            assert registered.worker_id
            return await client.engine_source("echo", 1)
        finally:
            await client.aclose()

    fetched = asyncio.run(fetch(served.admin_token))
    assert (fetched.revision, fetched.source, fetched.source_hash) == (
        1,
        ECHO_ENGINE,
        source_hash(ECHO_ENGINE),
    )
    with _http(served, admin.create_token("carol", "user").token) as http:
        assert http.get("/api/v1/agent/engines/echo/1").status_code == 403


# -- finding engines -----------------------------------------------------------------------------


def test_find_uses_the_query_grammar_over_engine_fields(admin: Client) -> None:
    admin.publish_engine("echo", ECHO_ENGINE)
    assert [e.name for e in admin.find("engine where type=compute")] == ["command", "echo"]
    assert [e.name for e in admin.find("engine where type=compute and builtin=false")] == ["echo"]
    assert [e.name for e in admin.find("engine where filename_extensions=.blend")] == ["blender"]
    assert [e.name for e in admin.find("engine where name~ray")] == ["povray"]
    assert "echo" in {e.name for e in admin.find("engine")}
    admin.disable_engine("echo")
    assert [e.name for e in admin.find("engines where enabled=no")] == ["echo"]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("colour=red", "unknown field 'colour'"),
        ("type", "expected FIELD OP VALUE"),
        ("type=render or type=compute", "expected 'and'"),
    ],
)
def test_a_bad_query_is_a_422_naming_it(admin: Client, where: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        admin.find(f"engine where {where}")
    assert (info.value.field, message in info.value.message) == ("q", True)


# -- engine jobs ---------------------------------------------------------------------------------


def test_an_engine_job_in_the_accsyn_shape_is_one_block_of_buckets(admin: Client) -> None:
    job = admin.create(
        "job",
        {
            "code": "shot 10",
            "engine": "blender",
            "input": "/proj/shot10.blend",
            "range": "1-10",
            "output": "/proj/render/shot10_####",
            "settings": {"task_bucketsize": 4},
            "priority_frames": "5",
            "dependencies": ["/proj/tex/wood.png"],
            "filters": "os:linux",
            "envs": {"linux": {"OCIO": "/proj/ocio.cfg"}},
            "parameters": {"arguments": "-t 2", "input_conversion": "never"},
        },
    )
    assert (job.name, job.kind, job.counts.total, job.blocks[0].chunk) == (
        "shot 10",
        "engine",
        3,
        4,
    )
    assert job.blocks[0].priority_frames == "5"
    assert job.payload == {
        "engine": "blender",
        "input": "/proj/shot10.blend",
        "inputs": ["/proj/shot10.blend"],
        "output": "/proj/render/shot10_####",
        "range": "1-10",
        "job_range": [1, 10],
        "parameters": {
            "arguments": "-t 2",
            "input_conversion": "never",
            "envs": {"linux": {"OCIO": "/proj/ocio.cfg"}},
        },
        "dependencies": ["/proj/tex/wood.png"],
        "settings": {"task_bucketsize": 4},
    }


@pytest.mark.parametrize(
    ("settings", "tasks", "chunk"),
    [
        ({}, 3, 4),  # blender's default bucket size
        ({"task_bucketsize": 0}, 1, 10),  # 0: the whole range in one task
        ({"task_bucketsize": 3, "split_mode": "single"}, 1, 10),
        ({"task_bucketsize": 1}, 10, 1),
    ],
)
def test_split_mode_and_bucket_size(
    admin: Client, settings: dict[str, Any], tasks: int, chunk: int
) -> None:
    job = admin.submit_engine("blender", input="/s.blend", range="1-10", settings=settings or None)
    assert (job.counts.total, job.blocks[0].chunk) == (tasks, chunk)


def test_an_engine_job_without_a_range_takes_the_engine_default(admin: Client) -> None:
    job = admin.submit_engine("blender", input="/s.blend")
    assert (job.blocks[0].frames, job.counts.total) == ("1-250", 63)
    assert job.name == "blender: s.blend"


MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("unknown engine", {"engine": "renderman"}, "engine"),
    ("command too", {"command": ["echo"]}, "command"),
    ("blocks too", {"blocks": [{"frames": "1"}]}, "blocks"),
    (
        "bad conversion",
        {"parameters": {"input_conversion": "sometimes"}},
        "parameters.input_conversion",
    ),
    ("bad remote os", {"parameters": {"remote_os": "beos"}}, "parameters.remote_os"),
    ("bad arguments", {"parameters": {"arguments": "'unclosed"}}, "parameters.arguments"),
    ("envs twice", {"envs": {"A": "1"}, "parameters": {"envs": {"B": "2"}}}, "envs"),
    ("bucket too big", {"settings": {"task_bucketsize": 101}}, "settings.task_bucketsize"),
    ("negative bucket", {"settings": {"task_bucketsize": -1}}, "settings.task_bucketsize"),
    ("range and frames", {"frames": "1-3"}, "range"),
    ("bad range", {"range": "3-1"}, "range"),
    ("wrong extension", {"input": "/s.ma"}, "input"),
    ("two inputs", {"inputs": ["/a.blend", "/b.blend"]}, "inputs"),
    ("no input", {"input": None}, "input"),
    ("unknown setting", {"settings": {"bucket": 2}}, "settings.bucket"),
]


def test_malformed_engine_jobs_get_422_naming_the_field_and_create_nothing(
    served: ServedController, admin: Client
) -> None:
    good = {"name": "j", "engine": "blender", "input": "/s.blend", "range": "1-10"}
    wrong = []
    with _http(served, served.admin_token) as http:
        for label, change, field in MALFORMED:
            body = {k: v for k, v in {**good, **change}.items() if v is not None}
            response = http.post("/api/v1/jobs", json=body)
            answer = response.json()
            got = (response.status_code, answer.get("field"))
            if got != (422, field) or not answer.get("message"):
                wrong.append((label, got, answer.get("message")))
    assert wrong == []
    assert admin.jobs() == []


def test_a_disabled_engine_refuses_new_jobs_until_enabled(admin: Client) -> None:
    admin.disable_engine("povray")
    with pytest.raises(InvalidRequest, match="disabled") as info:
        admin.submit_engine("povray", input="/s.pov", range="1")
    assert info.value.field == "engine"
    admin.enable_engine("povray")
    assert admin.submit_engine("povray", input="/s.pov", range="1").kind == "engine"


def test_a_published_engine_checks_parameters_with_its_own_merge(admin: Client) -> None:
    strict = ECHO_ENGINE + (
        "\n    @classmethod\n    def merge_parameters(cls, parameters):\n"
        "        merged = super().merge_parameters(parameters)\n"
        "        if not isinstance(merged['greeting'], str):\n"
        "            from thresher.engines import EngineConfigError\n"
        "            raise EngineConfigError('greeting must be text', parameter='greeting')\n"
        "        return merged\n"
    )
    admin.publish_engine("echo", strict)
    with pytest.raises(InvalidRequest) as info:
        admin.submit_engine("echo", input="a.txt", parameters={"greeting": 5})
    assert (info.value.field, info.value.message) == (
        "parameters.greeting",
        "greeting must be text",
    )
    job = admin.submit_engine("echo", input="a.txt")
    assert (job.blocks[0].frames, job.counts.total) == ("1-3", 3)  # the engine's defaults
