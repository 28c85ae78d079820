"""runtime_env: code and dependencies that travel with the work.

Driver side: ``validation`` (check, normalise, merge) and ``resolve`` (pack
local directories into content-addressed packages, upload them to the head,
the JSON a task spec carries). Head: ``gcs/packages.py`` keeps the packages.
Node: the raylet's ``agent.RuntimeEnvAgent`` sets envs up through the
plugins (``plugin.py``, built-ins in ``builtin.py``), caches what they make
and deletes what no env uses any more; the worker pool starts workers per
env (``env_key``) with the agent's ``RuntimeEnvContext``.
"""
