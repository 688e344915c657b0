"""JAX SAC behaviour policies written as Minari datasets: a real learning run on InvertedPendulum-v5 (whose maximum
return is 1000), resumed from its orbax checkpoint, and the datasets it writes read back with minari."""
import json
import os

import minari
import numpy as np
import pytest

from cdp_jax.data import load_transitions
from cdp_jax.datasets import mujoco

STEPS = 1500


def options(workdir, levels, **kw):
    return mujoco.Options(env_id="InvertedPendulum-v5", levels=levels, steps=STEPS, train_steps=12_000, start_steps=1000,
                          update_every=250, eval_every=1000, eval_episodes=5, ref_episodes=10, workdir=str(workdir),
                          progress=False, **kw)


@pytest.fixture(scope="module")
def generated(minari_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sac")
    first = mujoco.generate(options(workdir, "simple"))               # stops once simple (return >= 100) is reached
    second = mujoco.generate(options(workdir, "medium,medium-replay,expert,medium-expert"))   # resumes training
    return workdir, first, second


def test_sac_reaches_the_maximum_return_within_a_few_thousand_steps(generated):
    workdir, first, second = generated
    expert = second["levels"]["expert"]
    assert expert["return"] >= 950.0, expert                      # of a possible 1000 (the pendulum stays up)
    assert expert["step"] <= 12_000
    assert "note" not in expert                                   # reached, not the fallback
    assert first["levels"]["simple"]["step"] < second["levels"]["medium"]["step"] <= expert["step"]
    assert second["ref_max_score"] >= 900.0 and second["ref_min_score"] < 50.0


def test_rerun_resumes_from_the_checkpoint(generated):
    workdir, first, second = generated
    assert first["resumed_from"] == 0
    assert second["resumed_from"] == first["levels"]["simple"]["step"]     # the first run stopped (and saved) there
    steps = [json.load(open(os.path.join(workdir, "snapshots", f)))["step"]
             for f in sorted(os.listdir(os.path.join(workdir, "snapshots"))) if f.endswith(".json")]
    assert steps == list(range(1000, steps[-1] + 1, 1000))       # one evaluation per 1000 steps, none repeated
    assert steps[0] <= first["levels"]["simple"]["step"] < steps[-1]


def test_datasets_load_with_minari_and_have_reference_scores(generated):
    _, first, second = generated
    for level, did in {**first["datasets"], **second["datasets"]}.items():
        ds = minari.load_dataset(did)
        assert ds.spec.env_spec.id == "InvertedPendulum-v5"
        ep = next(iter(ds.iterate_episodes()))
        assert ep.observations.shape[1:] == (4,) and ep.actions.shape[1:] == (1,)
        assert len(ep.observations) == len(ep.actions) + 1
        data, info = load_transitions(did)
        assert info.ref_min_score == pytest.approx(second["ref_min_score"] if level != "simple" else first["ref_min_score"])
        assert info.ref_max_score > info.ref_min_score
        if level in mujoco.LEVELS:
            assert ds.total_steps == STEPS, level
        assert np.all(np.abs(np.asarray(data.actions)) <= 3.0)        # InvertedPendulum's bounds


def test_medium_expert_is_the_union_and_medium_replay_the_buffer(generated):
    _, _, second = generated
    load = lambda level: minari.load_dataset(second["datasets"][level])
    medium, expert, both = load("medium"), load("expert"), load("medium-expert")
    assert both.total_steps == medium.total_steps + expert.total_steps
    assert both.total_episodes == medium.total_episodes + expert.total_episodes
    rewards = lambda d: np.concatenate([e.rewards for e in d.iterate_episodes()])
    np.testing.assert_array_equal(rewards(both), np.concatenate([rewards(medium), rewards(expert)]))
    assert load("medium-replay").total_steps == second["levels"]["medium"]["step"]


@pytest.mark.parametrize("kw, message", [
    ({"env_id": "NoSuchEnv-v0"}, "unknown environment"),
    ({"env_id": "CartPole-v1"}, "Discrete action space"),
    ({"levels": "expert,medium"}, "out of order"),
    ({"levels": "medium-expert"}, "needs"),
])
def test_bad_input(tmp_path, kw, message):
    opts = options(tmp_path, kw.pop("levels", "medium"))
    for k, v in kw.items():
        setattr(opts, k, v)
    with pytest.raises(ValueError, match=message):
        mujoco.generate(opts)


def test_a_checkpoint_from_another_budget_is_refused(generated):
    workdir, _, _ = generated
    opts = options(workdir, "medium", overwrite=True)
    opts.train_steps = 20_000                                       # another replay capacity than the checkpoint's
    with pytest.raises(ValueError, match="does not fit"):
        mujoco.generate(opts)
