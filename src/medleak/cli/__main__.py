"""``python -m medleak.cli``: the same as the ``medleak`` command."""

import sys

from medleak.cli.main import main

sys.exit(main())
