"""The job agent process: ``python -m jray.dashboard.agent`` (the arguments
of ``jray._private.jobs``'s parser), the engine's agent with this layer's
entrypoint runners and, with ``--dashboard``, its pages."""

from __future__ import annotations

import asyncio
from typing import Any

from jray._private import daemon
from jray._private.jobs import __main__ as engine
from jray._private.jobs import common as C


def main(argv: list[str] | None = None) -> None:
    from jray.dashboard.entrypoints import ActorRunners

    args = engine.parse(argv)
    daemon.setup_logging(args.log)

    def pages(manager: Any, token: str, gcs_address: str) -> Any:
        from jray.dashboard.pages import Dashboard

        return Dashboard(manager, token, gcs_address)

    asyncio.run(engine.main(args, runners=ActorRunners(C.RUNNER_NAMESPACE),
                            dashboard_factory=pages if args.dashboard else None))


if __name__ == "__main__":
    main()
