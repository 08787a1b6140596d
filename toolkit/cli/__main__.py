"""``python -m toolkit.cli``: the ``forensics`` command without its console script."""

import sys

from toolkit.cli import main

sys.exit(main())
