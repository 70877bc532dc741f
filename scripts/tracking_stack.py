"""A local copy of the production tracking stack (MLflow with basic auth, a GCS emulator), run
until Ctrl-C; the code is the package ``tools.tracking_stack``::

    python scripts/tracking_stack.py --port 5000 --gcs-port 9023 --data-dir /tmp/stack
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # The checkout, so that the package is found whether or not the project is installed.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tools.tracking_stack.cli import main

    sys.exit(main())
