"""``python -m cli.demo`` (``make run``): the zero-visit story, narrated."""

from cli.demo.narration import main

raise SystemExit(main())
