"""One master seed, split by role.

Training episodes get seeds below 2**32; held-out test episodes get seeds from 2**32 up, so
evaluation never sees a training seed. The tests during training, which choose the best
checkpoint, use a block of their own (from 2**32 + VALIDATION_OFFSET), apart from the
seeds that evaluation reports on.
"""

from __future__ import annotations

import numpy as np

ROLE_STRATEGY = 1
ROLE_TRAIN_EPISODES = 2
ROLE_DISTILL_INIT = 3
ROLE_DISTILL_EPISODES = 4
ROLE_DISTILL_DRAWS = 5
ROLE_TEACHER_NOISE = 6
TEST_SEED_BASE = 2**32
# Held-out tests during training (which pick best.npz) start this far into the test seeds,
# so model selection never sees the seeds `evolve eval` reports on (offset 0 onwards).
VALIDATION_OFFSET = 10**6


def strategy_seed(master_seed: int) -> int:
    """The seed of the strategy's own random generator."""
    return int(np.random.SeedSequence([master_seed, ROLE_STRATEGY]).generate_state(1)[0])


def training_seeds(master_seed: int, generation: int, repeats: int) -> list[int]:
    """Episode seeds for one generation, shared by every member (common random numbers)."""
    seq = np.random.SeedSequence([master_seed, ROLE_TRAIN_EPISODES, generation])
    return [int(s) for s in seq.generate_state(repeats, dtype=np.uint32)]


def distill_init_seed(master_seed: int, student: int | None = None) -> int:
    """The seed of a distilled student's initial parameters (``student``: the recipe's
    ``distill.student_seed``, None for the master seed's own student)."""
    entropy = [master_seed, ROLE_DISTILL_INIT] + ([] if student is None else [student])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def distill_seeds(master_seed: int, iteration: int, episodes: int) -> list[int]:
    """Training episode seeds of one distillation iteration."""
    seq = np.random.SeedSequence([master_seed, ROLE_DISTILL_EPISODES, iteration])
    return [int(s) for s in seq.generate_state(episodes, dtype=np.uint32)]


def distill_stream(
    master_seed: int, iteration: int, student: int | None = None
) -> np.random.Generator:
    """The generator of one distillation iteration's other draws: who drives, then the
    minibatches; with ``student`` (``distill.student_seed``), that student's minibatches."""
    entropy = [master_seed, ROLE_DISTILL_DRAWS, iteration] + ([] if student is None else [student])
    return np.random.default_rng(np.random.SeedSequence(entropy))


def teacher_noise_stream(master_seed: int, iteration: int) -> np.random.Generator:
    """The generator of the noise on one distillation iteration's teacher-driven actions."""
    return np.random.default_rng(
        np.random.SeedSequence([master_seed, ROLE_TEACHER_NOISE, iteration])
    )


def test_seeds(episodes: int, offset: int = 0) -> list[int]:
    """Held-out episode seeds, disjoint from every training seed."""
    return [TEST_SEED_BASE + offset + i for i in range(episodes)]
