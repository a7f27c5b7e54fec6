"""Training: the evolution loop, DAgger distillation, run folders, and stopping on signals.

- :mod:`evolve.training.loop`: ``train`` (ask, evaluate, tell, test, checkpoint; staged recipes).
- :mod:`evolve.training.distill`: DAgger from a teacher into a permutation-invariant student.
- :mod:`evolve.training.run_folder`: ``config.json``, ``state.npz``, ``log.csv``, the curve.
- :mod:`evolve.training.run_lock`: one writer per run folder (``RUN/.lock``).
- :mod:`evolve.training.stopping`: SIGINT/SIGTERM stop a run cleanly after the current step.
"""
