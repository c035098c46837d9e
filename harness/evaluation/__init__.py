"""Playing a trained checkpoint on the test split and scoring what it did.

`evaluate` runs and records a run, `scoring` and `metrics` turn episodes into numbers (metrics
are small pure functions), `compare` pairs two methods episode by episode, and `probes/` asks a
model about the world through lm-eval. May import everything below it: core, data, agent,
training and `tasks/`.
"""
