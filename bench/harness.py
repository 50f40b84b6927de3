"""What the benchmarks that run a devnet share: where the code is, and a devnet in a
temporary directory that is always stopped."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cli.devnet import Devnet

CODE_ROOT: Final = Path(__file__).resolve().parent.parent  # the checkout the benchmarks run


@contextmanager
def running_devnet(prefix: str, validators: int = 4, *,
                   code_root: Path | None = None) -> Iterator[tuple[Path, Devnet]]:
    """A devnet of ``validators`` up in a new temporary directory; yields (that directory,
    the devnet, at ``directory/devnet``), its validators running ``code_root`` (default:
    this checkout). Stopped and removed on exit, whatever happened."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        net = Devnet(Path(tmp) / "devnet", code_root=code_root)
        try:
            net.up(validators)
            yield Path(tmp), net
        finally:
            net.down()
