import sys

from lib.core.speedups import freeze_long_lived, skip_unused_slow_imports

skip_unused_slow_imports()  # before runner.cli.main's imports reach jsonschema

if sys.argv[1:2] == ["serve"]:
    # The serving image has no papermill or Jupyter, which runner.cli.main imports.
    from runner.cli.serve import main as serve  # noqa: E402

    code = serve(sys.argv[2:])
else:
    from runner.cli.main import main  # noqa: E402

    code = main()
# Everything alive now dies with the process: frozen, the interpreter's last full garbage
# collections skip it (~1 s after a stage, with MLflow and nbconvert loaded).
freeze_long_lived()
sys.exit(code)
