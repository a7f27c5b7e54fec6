"""The balance profile agrees with the rollout engine, and tells holding still from swinging."""

from pathlib import Path

import numpy as np
import pytest

import sensoryneuron as sn
from evolve.rollout import EpisodeJob, rollout
from evolve.seeds import test_seeds as held_out_seeds
from tasks.perturbations import Perturbations

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "cartpole_balance_profile.py"


@pytest.mark.parametrize("name", ["fnn-baseline", "cartpole-swingup-harder"])
def test_returns_and_failures_match_the_rollout_engine(bench, name):
    policy = sn.load_policy(name)
    perturbations = bench._condition(policy, None)
    seeds = held_out_seeds(24, 7000)
    row = bench.profile(policy, perturbations, seeds)
    job = EpisodeJob(
        model=policy.model.to_dict(),
        env_id=bench.ENV_ID,
        perturbations=perturbations.to_dict(),
        seeds=tuple(seeds),
    )
    engine = rollout(job, policy.params[None])
    assert row["mean_return"] == pytest.approx(engine.returns.mean(), rel=1e-9)
    assert row["failure_rate"] == pytest.approx(np.mean(engine.steps[0] < 1000))


def test_the_teacher_holds_the_pole_still(bench):
    teacher = sn.load_policy("fnn-baseline")
    row = bench.profile(teacher, Perturbations(shuffle=False), held_out_seeds(24, 7000))
    assert row["held_still"] == 1.0
    assert row["balance_mean_cos"] > 0.99
    assert row["survivor_reward_per_step"]["800-1000"] > 0.99


def test_cli_writes_json(bench, tmp_path, capsys):
    out = tmp_path / "profile.json"
    bench.main(["fnn-baseline", "--episodes", "8", "--json", str(out)])
    assert "fnn-baseline (unshuffled), 8 held-out episodes" in capsys.readouterr().out
    assert out.exists() and "held_still" in out.read_text()


def test_cli_refuses_bad_episodes(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--episodes", "0"])
    assert exc.value.code == 2
    assert "--episodes must be at least 1; got 0" in capsys.readouterr().err


def test_cli_refuses_a_missing_agent_in_one_line(bench, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main([str(tmp_path / "nope.npz"), "--episodes", "2"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: " in err and "nope.npz: no such run folder" in err
