"""The levers scripts' ``--teacher RUN``: a new run folder whose teacher stage is another
run, so that the recipe starts with its distillation and reads that run's teacher; and
``--from RUN``, which takes RUN's distillation and its teacher."""

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from evolve.backends import LocalBackend
from evolve.training.run_folder import load_state
from sensoryneuron.checkpoints import load_policy

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "distill_levers.py"


def test_a_linked_teacher_is_not_trained_again_and_the_distillation_reads_it(
    bench, train_tiny_es, tiny_staged_preset, tmp_path, caplog
):
    preset = tiny_staged_preset(iterations=2, generations=0, test_every=1, time_budget=None)
    source = tmp_path / "teacher-run"  # a shorter run of the teacher recipe
    train_tiny_es(
        preset.teacher.replace(training={"generations": 3}), source, backend=LocalBackend(1)
    )
    run = tmp_path / "run"
    linked = bench.link_teacher(source, run, preset)
    assert linked.teacher.training.generations == 3  # the generations the source ran
    assert linked.replace(teacher=preset.teacher) == preset  # nothing else changed

    with caplog.at_level(logging.INFO, logger="evolve"):
        train_tiny_es(linked, run, resume=True, backend=LocalBackend(1))
    assert "stage 1 of 3" not in caplog.text
    assert "stage 2 of 3: distilling the teacher" in caplog.text
    assert "[distill] iteration" in caplog.text
    assert load_state(run / "teacher")[0].generation == 3
    teacher = load_policy(run / "teacher" / "best.npz")
    assert np.array_equal(teacher.params, load_policy(source / "best.npz").params)
    assert load_state(source)[0].generation == 3  # the source is left as it was
    assert (run / "distill" / "best.npz").exists()

    with pytest.raises(SystemExit, match="exists: --teacher makes a new run folder"):
        bench.link_teacher(source, run, preset)
    with pytest.raises(SystemExit, match="holds no trained run"):
        bench.link_teacher(tmp_path / "nothing", tmp_path / "other", preset)
    half = tmp_path / "half"  # a run with a best.npz but no state to resume from
    half.mkdir()
    shutil.copy(source / "best.npz", half / "best.npz")
    with pytest.raises(SystemExit, match="holds no trained run"):
        bench.link_teacher(half, tmp_path / "other", preset)
    with pytest.raises(SystemExit, match="has no trained teacher stage"):
        bench.link_teacher(source, tmp_path / "other", preset.teacher)


def test_a_linked_distillation_keeps_its_teacher_and_only_the_evolution_runs(
    bench, train_tiny_es, tiny_staged_preset, tmp_path, caplog
):
    preset = tiny_staged_preset(iterations=2, generations=0, test_every=1, time_budget=None)
    source = tmp_path / "teacher-run"
    train_tiny_es(
        preset.teacher.replace(training={"generations": 2}), source, backend=LocalBackend(1)
    )
    first = tmp_path / "distilled"
    linked = bench.link_teacher(source, first, preset)
    train_tiny_es(linked, first, resume=True, backend=LocalBackend(1))

    evolving = preset.replace(
        strategy={"popsize": 8}, training={"generations": 2, "repeats": 1, "test_episodes": 1}
    )
    run = tmp_path / "evolved"
    relinked = bench.link_distillation(first, run, evolving)
    assert relinked.teacher.training.generations == 2
    with caplog.at_level(logging.INFO, logger="evolve"):
        train_tiny_es(relinked, run, resume=True, backend=LocalBackend(1))
    assert "stage 1 of 3" not in caplog.text  # no teacher trained
    assert "[distill] iteration" not in caplog.text  # nor a distillation iteration
    assert "stage 3 of 3: evolving the distilled student" in caplog.text
    assert load_state(run)[0].generation == 2
    assert np.array_equal(
        load_policy(run / "teacher" / "best.npz").params, load_policy(source / "best.npz").params
    )
