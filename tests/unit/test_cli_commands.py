"""The ``jray`` command's one list of subcommands, and its old entry point.

The commands themselves run against real clusters in
``tests/integration/test_cli.py``; here, only the wiring (no processes but
one ``--help``).
"""

from __future__ import annotations

import subprocess
import sys

import jray.cli
import jray.scripts
from jray.cli import COMMANDS, build_parser


def test_every_command_is_a_subparser_with_its_help() -> None:
    names = [c.name for c in COMMANDS]
    assert names == ["start", "stop", "status", "up", "down", "list", "summary", "memory", "stack", "profile", "logs", "debug",
                     "metrics", "job", "microbenchmark"]
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == names
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert helps == {c.name: c.help for c in COMMANDS}
    for c in COMMANDS:
        assert build_parser().parse_args([c.name, *(["tasks"] if c.name in ("list", "summary") else []),
                                          *(["list"] if c.name == "job" else []),
                                          *(["--head"] if c.name == "start" else []),
                                          *(["--pid", "1"] if c.name == "profile" else []),
                                          *(["cluster.yaml"] if c.name in ("up", "down") else [])])._run is c.run


def test_jray_help_lists_the_commands() -> None:
    r = subprocess.run([sys.executable, "-m", "jray.scripts", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for c in COMMANDS:
        assert c.name in r.stdout


def test_old_entry_point_is_the_new_one() -> None:
    assert jray.scripts.main is jray.cli.main
    assert jray.scripts.COMMANDS is COMMANDS


def test_the_engine_imports_no_cli() -> None:
    # A fresh interpreter: the engine's modules must not pull in the public CLI.
    code = ("import sys, jray._private.node, jray._private.config\n"
            "print(sorted(m for m in sys.modules if m.startswith(('jray.cli', 'jray.scripts', 'jray.bench'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
