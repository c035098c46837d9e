"""Training corpora: how D_expert, D_look and D_world are built from a task (`recipes`).

Only train-side instances reach these corpora. May import `harness.core`, `tasks/` and
`harness.agent`; nothing above it (training, evaluation, reporting, running, cli).
"""
