"""chromem's names have one home: format/layout.py (others import them, none spells them again)."""

from __future__ import annotations

import ast
from pathlib import Path

from guardian.format import layout

PACKAGE = Path(__file__).resolve().parents[2] / "guardian"
CHROMEM_NAMES = {"00000000", ".gob", ".gob.gz", "00000000.gob", "00000000.gob.gz"}


def test_no_module_but_layout_spells_chromems_names():
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "format" / "layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in CHROMEM_NAMES:
                spelled.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value!r}")
    assert spelled == [], "import them from guardian.format.layout"


def test_the_names_are_chromems():
    assert layout.metadata_file_name(False) == "00000000.gob"
    assert layout.metadata_file_name(True) == "00000000.gob.gz"
    assert layout.EXTENSIONS == (".gob", ".gob.gz")
    assert layout.collection_dir_name("checkpoints") == "6c7f5464"
    assert layout.file_stem("0356cf79.gob.gz") == "0356cf79"
