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


def test_sensor_weights_tell_the_checkpoint_from_an_agent_that_reads_a_sum(bench, tmp_path):
    # the paper's checkpoint weighs th_dot four times x and sin once balanced; the linear head
    # of an agent whose sensory neurons ignore their input weighs every sensor alike
    reference = Path(__file__).resolve().parents[3] / "shared" / "reference" / "cartpole_pi.npz"
    if not reference.exists():
        pytest.skip("the published cartpole_pi.npz is not here")
    seeds = held_out_seeds(6, 7000)
    pi = sn.load_reference_policy(reference)
    row = bench.profile(pi, Perturbations(shuffle=True), seeds, "SensoryNeuron/CartPoleBalance-v0")
    late = row["sensor_weights"]["survivors_steps_400_1000"]
    assert late["th_dot"] < 3 * min(late["x"], late["sin"]) < 0
    params = pi.params.copy()
    params[pi.model.param_spec.indices(["neuron.weight_ih"])] = 0.0  # one key for every slot
    blind = sn.Policy(pi.model, params, action=pi.action)
    first = bench.profile(blind, Perturbations(shuffle=True), seeds)["sensor_weights"]
    values = list(first["steps_0_100"].values())
    assert max(values) - min(values) < 1e-6 * max(abs(v) for v in values)
    assert (
        bench.profile(sn.load_policy("fnn-baseline"), Perturbations(), seeds[:1])["sensor_weights"]
        is None
    )  # a feed-forward agent has no attention


def test_cli_writes_json(bench, tmp_path, capsys):
    out = tmp_path / "profile.json"
    bench.main(["fnn-baseline", "--episodes", "8", "--json", str(out)])
    assert "fnn-baseline (unshuffled), 8 held-out episodes of " in capsys.readouterr().out
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
