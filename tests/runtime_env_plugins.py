"""A runtime_env plugin for the tests (a user's field, found by the nodes
through ``JRAY_RUNTIME_ENV_PLUGINS``)."""

from __future__ import annotations

import asyncio

from jray.runtime_env import RuntimeEnvPlugin


class SlowMarker(RuntimeEnvPlugin):
    """A user's field: sleeps (seconds) while set up, then marks the worker."""
    name = "slow_marker"
    priority = 20

    @staticmethod
    def validate(value):
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError("slow_marker must be a number of seconds >= 0")
        return value

    async def create(self, uri, runtime_env, context, logger):
        logger.info("marking (sleeping %s s)", runtime_env["slow_marker"])
        await asyncio.sleep(runtime_env["slow_marker"])
        return 0

    def modify_context(self, uris, runtime_env, context, logger):
        context.env_vars["SLOW_MARKER"] = str(runtime_env["slow_marker"])
