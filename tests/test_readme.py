"""README stays true: every option of every command's --help is documented in it."""

from __future__ import annotations

import re
from pathlib import Path

from guardian.cli import COMMANDS, build_parser

README = Path(__file__).resolve().parent.parent / "README.md"


def command_options() -> dict[str, set[str]]:
    """Every option string (``--prune``, ``-k`` …) each command's parser accepts, and the top level's."""
    parser = build_parser()
    found = {"guardian": {flag for action in parser._actions for flag in action.option_strings}}
    for name, sub in parser.command_parsers.items():
        found[name] = {flag for action in sub._actions for flag in action.option_strings}
    return found


def test_every_help_flag_is_in_the_readme():
    text = README.read_text()
    options = command_options()
    assert set(options) == {"guardian", *COMMANDS}
    missing = {name: sorted(flag for flag in flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text))
               for name, flags in options.items()}
    assert {name: flags for name, flags in missing.items() if flags} == {}


def test_the_flags_test_sees_new_flags(tmp_path):
    """The check itself: a flag that is nowhere in the README is reported."""
    assert not re.search(r"(?<![\w-])--no-such-flag(?![\w-])", README.read_text())
    assert "--prune" in command_options()["snapshot"] and "--target" in command_options()["restore"]
