"""The command line: the parser, main and exit statuses (``main``), the -p/-r/-y/-f options
(``options``), ``runner pipeline`` and ``status`` (``pipeline``), ``runner promote``
(``promote``) and a closed stdout (``closed_pipe``).

The top layer of the runner. Importing it imports nothing.
"""
