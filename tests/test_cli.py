from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import build_parser, main

COMMANDS = {"run", "demo", "broker", "tail", "schema", "migrate", "status", "sql", "dead-letters", "replay"}
COMMANDS |= {"up", "down", "stack-status"}  # the local stack (devtools/stack.py)
COMMANDS |= {"feeds"}  # the feed schedule (ingest/schedule_store.py)
COMMANDS |= {"reconcile"}  # re-publish what the topic lost (newswire/reconcile.py)


def test_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in COMMANDS:
        assert command in out
    assert set(build_parser()._subparsers._group_actions[0].choices) == COMMANDS


def test_bad_settings_exit_non_zero_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSWIRE_HOST_INTERVAL", "-1")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert "NEWSWIRE_HOST_INTERVAL" in err and "Traceback" not in err


def test_run_with_unreachable_broker_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds.toml"
    feeds.write_text('[[feeds]]\nurl = "https://news.example.org/rss"\nname = "Example"\n')
    monkeypatch.setenv("NEWSWIRE_HOME", str(tmp_path / "home"))
    assert main(["run", "--feeds", str(feeds), "--bootstrap", "127.0.0.1:1"]) == 1
    assert "not reachable" in capsys.readouterr().err


def test_run_without_a_feed_list_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSWIRE_HOME", str(tmp_path / "home"))
    assert main(["run", "--bootstrap", "127.0.0.1:1"]) == 1
    assert "NEWSWIRE_FEEDS" in capsys.readouterr().err


def test_schema_prints_the_event_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "newswire.events"]) == 0
    assert '"event_id"' in capsys.readouterr().out


def test_migrate_and_status_on_a_fresh_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSWIRE_HOME", str(tmp_path / "home"))
    assert main(["migrate"]) == 0
    assert main(["status"]) == 0
    assert "accounting invariant holds" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["up"], ["down"], ["stack-status"], ["demo"]])
def test_development_commands_say_so_where_the_dev_tools_are_not_installed(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The production image has no devtools package: `import devtools` fails there as it does here.
    for name in [m for m in sys.modules if m == "devtools" or m.startswith("devtools.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "devtools", None)
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "development tools" in err and "Traceback" not in err


def test_up_refuses_an_unknown_dag_to_keep_paused_before_starting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["up", "--paused", "newswire_nope"]) == 2
    assert "newswire_nope" in capsys.readouterr().err
