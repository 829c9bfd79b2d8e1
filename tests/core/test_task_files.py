"""Task lists read into argvs: shell-word lines, JSON lines, file lines, and their bounds."""

from __future__ import annotations

import pytest

from thresher.core import placeholders
from thresher.core.errors import InvalidInput
from thresher.core.task_files import (
    MAX_LINE_BYTES,
    MAX_TASKS,
    check_tasks,
    escape_braces,
    parse_task_list,
    task_payload,
)


@pytest.mark.parametrize(
    ("text", "tasks"),
    [
        ("render -f 1\nrender -f 2\n", [["render", "-f", "1"], ["render", "-f", "2"]]),
        ("a 'two words' \"and three\"", [["a", "two words", "and three"]]),
        ("echo $HOME;rm -rf /", [["echo", "$HOME;rm", "-rf", "/"]]),  # no shell: words only
        ("# a comment\n\n   \nx\n", [["x"]]),
        ('["py", "-c", "print(1)"]', [["py", "-c", "print(1)"]]),
        ("echo {frame}", [["echo", "{frame}"]]),
        ("a\\ b c", [["a b", "c"]]),
    ],
)
def test_each_line_is_one_task_of_words(text: str, tasks: list[list[str]]) -> None:
    assert parse_task_list(text) == tasks


def test_lines_are_files_makes_each_line_one_argument() -> None:
    text = "/shots/a b/sc01.ifd\n/shots/a b/sc02.ifd\n"
    assert parse_task_list(text, files=True) == [["/shots/a b/sc01.ifd"], ["/shots/a b/sc02.ifd"]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one task"),
        ("# only a comment", "at least one task"),
        ("ok\necho 'open", "line 2 cannot be split"),
        ('["a", 1]', "line 1 must be a JSON list of strings"),
        ("[not json", "line 1 is not a JSON list"),
        ("x" * (MAX_LINE_BYTES + 1), f"line 1 is longer than {MAX_LINE_BYTES} bytes"),
        ("t\n" * (MAX_TASKS + 1), f"at most {MAX_TASKS} tasks"),
    ],
)
def test_a_bad_list_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_task_list(text, field="file")
    assert info.value.field == "file"


def test_a_task_list_is_checked_task_by_task() -> None:
    with pytest.raises(InvalidInput) as info:
        check_tasks([["ok"], []])
    assert info.value.field == "tasks[1]"
    check_tasks([["ok"], []], prefix=True)  # after a command prefix, a task may add nothing
    with pytest.raises(InvalidInput) as info:
        check_tasks([["a"] * 1001])
    assert info.value.field == "tasks[0]"
    with pytest.raises(InvalidInput, match="NUL"):
        check_tasks([["a\x00b"]])


def test_a_task_is_sent_only_its_own_argv_and_braces_stay_literal() -> None:
    lines = [escape_braces(["echo", "{frame}", "}{"]), escape_braces(["echo", "two"])]
    payload = {"commands": [[]], "task_lines": [lines]}
    sent = task_payload(payload, 0, 0)
    assert sent == {"commands": [["echo", "{{frame}}", "}}{{"]]}
    # what the worker runs: the template expanded, which gives the line back as it was
    assert placeholders.expand(sent["commands"][0], [0]) == ["echo", "{frame}", "}{"]
    assert task_payload(payload, 0, 1) == {"commands": [["echo", "two"]]}
    other = {"commands": [["echo"]]}
    assert task_payload(other, 0, 5) is other
