"""The engine: running a run.

- ``runtime``: the seam. The facade hands the engine a :class:`Runtime`
  (app name, store, limits, waits) and sees its tasks and workflows through
  small protocols; the engine never imports the facade.
- ``context``: the run's context (a ContextVar) and step-id allocation.
- ``steps``: one checkpointed step: look up, else run with retries, then save.
- ``executor`` and ``body``: claim a run, wait for another owner, run the
  body, record the outcome, adopt a winner's.
- ``waits`` and ``signal_poller``: durable sleeps and signal waits.
- ``lease``: owner ids and the heartbeat that renews leases.
- ``observe``: the hooks an observer (tracing, metrics) gets; none by default.
- ``serde``, ``ids``, ``clock``: stored values, run ids, test switches.
"""
