"""lib.tuning.backend: the trial backend found through its entry point (the runner's is
tested in tests/runner/test_trial_backend.py, a backend of a distribution under tmp in
tests/lib/tuning/test_trials.py)."""

import pytest

from lib.core.errors import UserError
from lib.tuning.backend import open_backend


def test_a_backend_not_installed_is_a_one_line_error_naming_the_fix():
    with pytest.raises(UserError) as info:
        open_backend(1, None, name="no-such-backend")
    message = str(info.value)
    assert "'no-such-backend'" in message and "run scripts/setup.sh" in message
    assert "\n" not in message
