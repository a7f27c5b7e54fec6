"""Evaluation: held-out test conditions, the evaluation table, and the paper's tables.

- :mod:`evolve.evaluation.conditions`: the condition grammar (``shuffled+noise=5``...).
- :mod:`evolve.evaluation.evaluate`: ``evaluate_policy`` on held-out seeds, one row per condition.
- :mod:`evolve.evaluation.paper_table`: the published tables beside ours (JSON and a chart).
"""
