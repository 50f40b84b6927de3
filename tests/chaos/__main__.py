"""``python -m tests.chaos [--quick] [--only NAME ...]``: see :mod:`tests.chaos`."""

from __future__ import annotations

from tests.chaos import main

raise SystemExit(main())
