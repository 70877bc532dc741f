import sys

from lib.core.speedups import freeze_long_lived, skip_unused_slow_imports

skip_unused_slow_imports()  # before runner.cli.main's imports reach jsonschema

from runner.cli.main import main  # noqa: E402

code = main()
# Everything alive now dies with the process: frozen, the interpreter's last full garbage
# collections skip it (~1 s after a stage, with MLflow and nbconvert loaded).
freeze_long_lived()
sys.exit(code)
