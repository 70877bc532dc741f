"""``python -m tools.tracking_stack``: the local tracking stack until Ctrl-C (see the package)."""

import sys

from tools.tracking_stack.cli import main

sys.exit(main())
