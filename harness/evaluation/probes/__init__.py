"""lm-eval probes of a model's world model on held-out test-side states.

Two lm-eval tasks (YAML files in this folder) over local jsonl files:

- `foresight_next_obs` (generate_until, exact match): given "world <state> act <action> ->",
  does the model write the observation the world gave?
- `foresight_calibration` (multiple_choice over "success" and "failure"): p is the model's
  probability of "success" normalized over the two words, scored with Brier and ECE against
  the sampled outcome and with Q-error against Q*(state, plan).

`items.py` renders the probe items, `scoring.py` holds the metric functions the YAML files name
with `!function`, and `runner.py` runs both through `lm_eval.simple_evaluate` with an `HFLM`.
"""
