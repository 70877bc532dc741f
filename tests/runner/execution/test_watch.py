"""runner.execution.watch: a kernel's death told in one line (its signal or exit code, and its
last memory).
"""

from __future__ import annotations

from runner.execution.watch import describe_death


def test_the_death_of_a_kernel_in_one_line():
    assert describe_death(-9, 2.1 * 2**30) == (
        "the kernel died: killed by SIGKILL, probably out of memory; last measured 2.1 GiB"
    )
    assert describe_death(-11, 512 * 2**20) == (
        "the kernel died: killed by SIGSEGV; last measured 512 MiB"
    )
    assert describe_death(1, None) == "the kernel died: exited with code 1"
    assert describe_death(None, None) == "the kernel died: its exit status is unknown"
    assert describe_death(-99, None) == "the kernel died: killed by signal 99"
