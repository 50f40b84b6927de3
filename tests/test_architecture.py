"""The package layout holds: one direction of dependency, no circle (tests/architecture.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import architecture


def test_shipped_packages_keep_one_direction_and_no_circle() -> None:
    rooms, problems = architecture.check()
    assert problems == []
    assert rooms["ledger"] == set()
    assert rooms["node"] <= {"ledger"}
    assert rooms["identity"] <= {"ledger"}


def _tree(root: Path, files: dict[str, str]) -> Path:
    for package in architecture.SHIPPED:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


@pytest.mark.parametrize(("files", "expected"), [
    ({"ledger/block.py": "from node.service import x\n"}, "ledger may not import node"),
    ({"identity/wallet.py": "import node.api.app\n"}, "identity may not import node"),
    ({"identity/verifier.py": "def f():\n    from node import tls\n"}, "identity may not import node"),
    ({"identity/holder.py": "from fastapi import FastAPI\n"}, "identity may not import a web framework"),
    ({"node/driver.py": "from identity.http import routes\n", "identity/http/__init__.py": "",
      "identity/http/routes.py": ""}, "node may not import identity.http"),
    ({"ledger/a.py": "from ledger import b\n", "ledger/b.py": "from ledger.a import x\n"},
     "import circle: ledger.a <-> ledger.b"),
    ({"ledger/a.py": "import ledger.b\n", "ledger/b.py": "import ledger.c\n",
      "ledger/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ledger.a import A\n"},
     "import circle: ledger.a <-> ledger.b <-> ledger.c"),
    ({"node/sub/__init__.py": "", "node/sub/x.py": "from . import y\n", "node/sub/y.py": "from .x import z\n"},
     "import circle: node.sub.x <-> node.sub.y"),
])
def test_check_reports_a_wrong_direction_or_a_circle(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    _, problems = architecture.check(_tree(tmp_path, files))
    assert any(expected in problem for problem in problems), problems


def test_allowed_imports_are_not_breaches(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "identity/http/__init__.py": "", "identity/http/routes.py": "import fastapi\nfrom node.api import app\n",
        "node/api/__init__.py": "", "node/api/app.py": "from ledger import kv\n", "ledger/kv.py": "import plyvel\n",
        "cli/main.py": "from identity.http import routes\n",
    })
    rooms, problems = architecture.check(root)
    assert problems == []
    assert rooms["identity.http"] == {"node"}


def test_main_prints_the_package_graph(capsys: pytest.CaptureFixture[str]) -> None:
    assert architecture.main([]) == 0
    out = capsys.readouterr().out
    assert "node           -> ledger" in out
    assert "0 breaches" in out
