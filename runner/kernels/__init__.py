"""The runner's Jupyter kernels: a pool of warm, reused kernels (:mod:`.pool`), the
functions that run inside them (:mod:`.inside`) and how they are called (:mod:`.calls`),
the jupyter_client parts (:mod:`.clients`), and kernels handed from one process to another
(:mod:`.handoff`)."""

from runner.kernels.calls import KernelCodeError, KernelPoolError
from runner.kernels.handoff import HANDOFF_ENV, KernelHandoff, handoff_env_value, take_handoffs
from runner.kernels.pool import KernelPool, PooledKernel

__all__ = [
    "HANDOFF_ENV",
    "KernelCodeError",
    "KernelHandoff",
    "KernelPool",
    "KernelPoolError",
    "PooledKernel",
    "handoff_env_value",
    "take_handoffs",
]
