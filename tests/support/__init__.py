"""Helpers of the tests, no tests: generated data, the runner as a process, the servers and
engines the fixtures start (registered as plugins in tests/conftest.py), Polyaxon's renderer;
``make_legacy_model`` makes a committed fixture by hand (see its docstring)."""
