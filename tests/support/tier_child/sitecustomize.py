"""The fast tier's child guard: Python processes that the tests start under the guard
(tests/support/tier_guard.py) find this folder first on ``PYTHONPATH``. It refuses the same
programs in them, appending each refusal to ``$TESTS_TIER_REPORT`` for the test to fail on.
``GUARD`` is stopped by the pytest plugin when the child is itself a pytest run (pytester)."""

import importlib.util
import os
from pathlib import Path

GUARD = None
if os.environ.get("TESTS_TIER_REPORT"):
    _spec = importlib.util.spec_from_file_location(
        "_tests_tier_guard", Path(__file__).resolve().parents[1] / "tier_guard.py"
    )
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    GUARD = _module.Guard(Path(os.environ["TESTS_TIER_REPORT"]), owner=False)
    GUARD.start()
