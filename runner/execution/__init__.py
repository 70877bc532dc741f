"""Running a notebook: papermill's execution (``execute``, ``engine``), the stage hooks,
watching and stopping it (``watch``, ``stopping``), its console output (``console``) and the
one function that runs a stage for the commands, the pipeline and the trials (``run_stage``).

Above ``runner.kernels``. Importing it imports nothing.
"""
