"""The bottom layer: what every other part of the project stands on.

Errors, the task and method registries, profile config, atomic file writes, locks, fault points,
the run store, and the turn formats (`traces`: the ReAct and foresight blocks that agents write and
`tasks/` renders). It imports nothing of the project outside `harness.core`, so `tasks/` may use it.
"""
