"""``python -m arbengine ...`` is the ``arbengine`` command."""

from arbengine.cli import main

raise SystemExit(main())
