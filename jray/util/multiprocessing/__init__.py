"""A drop-in ``multiprocessing.Pool`` whose processes are jray actors
(Ray's ``ray.util.multiprocessing``)."""

from jray.util.multiprocessing.pool import AsyncResult, Pool, TimeoutError

__all__ = ["AsyncResult", "Pool", "TimeoutError"]
