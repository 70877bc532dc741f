"""The runner's Jupyter kernels: a pool of warm, reused kernels (:mod:`.pool`), the
functions that run inside them (:mod:`.inside`) and how they are called (:mod:`.calls`),
and the jupyter_client parts (:mod:`.clients`)."""

from runner.kernels.calls import KernelCodeError, KernelPoolError
from runner.kernels.pool import KernelPool, PooledKernel

__all__ = ["KernelCodeError", "KernelPool", "KernelPoolError", "PooledKernel"]
