"""One error hierarchy, one list of exit codes: every error and command uses ExitCode; README lists them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from guardian import errors
from guardian.errors import ExitCode, GuardianError, LockError

ROOT = Path(__file__).resolve().parent.parent


def all_error_classes(cls=GuardianError) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += all_error_classes(sub)
    return found


def test_every_error_exits_with_a_named_code():
    for cls in all_error_classes():
        assert isinstance(cls.exit_code, ExitCode), f"{cls.__name__}.exit_code is {cls.exit_code!r}"


def test_a_held_lock_and_a_fatal_child_are_told_apart():
    assert LockError.exit_code == ExitCode.LOCKED != ExitCode.CHILD_FATAL
    assert len({int(code) for code in ExitCode}) == len(ExitCode)


def test_readme_exit_code_table_lists_every_code_by_name():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Exit codes"):readme.index("## What `check` reports")]
    rows = dict(re.findall(r"^\| (\d+) \| `(\w+)` \|", table, re.MULTILINE))
    assert rows == {str(int(code)): code.name for code in ExitCode}


def exit_code_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """``run`` and every function whose result ``run`` returns (transitively): the exit code's path."""
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    chosen, todo = {}, ["run"]
    while todo:
        name = todo.pop()
        if name in chosen or name not in functions:
            continue
        chosen[name] = functions[name]
        for node in ast.walk(functions[name]):
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Call) \
                    and isinstance(node.value.func, ast.Name):
                todo.append(node.value.func.id)
    return list(chosen.values())


def test_commands_return_exit_codes_not_bare_numbers():
    offenders = []
    for path in sorted((ROOT / "guardian" / "commands").glob("*_cmd.py")):
        for function in exit_code_functions(ast.parse(path.read_text())):
            for node in ast.walk(function):
                if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) \
                        and type(node.value.value) is int:
                    offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == [], "use guardian.errors.ExitCode: " + ", ".join(offenders)


def test_the_cli_has_no_exit_numbers_of_its_own():
    tree = ast.parse((ROOT / "guardian" / "cli.py").read_text())
    returns = [n.value.value for n in ast.walk(tree) if isinstance(n, ast.Return)
               and isinstance(n.value, ast.Constant) and type(n.value.value) is int]
    assert returns == []
    assert not [name for name in vars(errors) if name.startswith("EXIT_")]
