"""The head's application layer: the parts of the job agent that stand on
the public API and the notebook layer, as Ray's ``ray.dashboard`` holds its
job agent.

- ``agent.py``: the job agent's entry point (``python -m jray.dashboard.agent``,
  started by ``jray start --head`` and the Jupyter server extension): the
  engine's agent (``jray._private.jobs``) with the two pieces below handed in;
- ``entrypoints.py``: jobs with entrypoint resources run in an
  ``EntrypointRunner`` actor holding them (the agent connects as a driver);
- ``pages.py``: the head's dashboard (overview, job pages, the live views of
  ``jray.jupyter.views.pages``) behind the cluster token.
"""
