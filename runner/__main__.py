import gc
import sys

from runner.cli import main

code = main()
# Everything alive now dies with the process: frozen, the interpreter's last full garbage
# collections skip it (~1 s after a stage, with MLflow and nbconvert loaded).
gc.freeze()
sys.exit(code)
