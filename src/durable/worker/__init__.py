"""Workers: queues, claiming queued runs, parking long waits, recovery, schedules.

The room for running runs in the background and across processes and
machines. It sits between the facade (``durable.Workflow``) and the engine.
"""
