"""``runner pipeline``'s machinery: the plan (``plan``), stamps, digests, each notebook's code
closure (``lib.core.code_deps``) and the locks.

Above ``runner.execution``. Importing it imports nothing.
"""
