"""The Minari data layer on datasets the project generates itself."""
import json
import time

import chex
import jax
import jax.numpy as jnp
import minari
import numpy as np
import pytest

from cdp_jax import datasets as D
from cdp_jax.datasets import subsets as S
from cdp_jax.datasets import generate
from cdp_jax.datasets.generators import pointmaze
from cdp_jax.datasets.generators.writing import mean_return

MAZE_ID, TOY_ID = "local/pointmaze/umaze-v0", "local/toy/reach-v0"


def test_pointmaze_loads_with_minari_and_exact_steps(minari_root):
    ds = minari.load_dataset(MAZE_ID)
    assert ds.total_steps == 3000
    data, info = D.load_transitions(MAZE_ID)
    assert data.size == 3000 and info.total_steps == 3000 and info.total_episodes == ds.total_episodes
    chex.assert_shape([data.observations, data.next_observations], (3000, 6))
    chex.assert_shape(data.actions, (3000, 2))
    assert info.obs_layout == (("observation", 4), ("desired_goal", 2))
    assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(data))
    # next_obs equals the following obs inside episodes, and the stored final observation at episode ends.
    obs, nxt = np.asarray(data.observations), np.asarray(data.next_observations)
    ends = np.asarray(data.episode_ends).astype(bool)
    inside = ~ends[:-1]
    np.testing.assert_array_equal(nxt[:-1][inside], obs[1:][inside])
    for k, ep in enumerate(ds.iterate_episodes()):
        start = info.episode_starts[k]
        last = start + len(ep.rewards) - 1
        assert ends[last] and ends[start:last].sum() == 0
        final = np.concatenate([ep.observations["observation"][-1], ep.observations["desired_goal"][-1]])
        np.testing.assert_allclose(nxt[last], final, rtol=1e-6)
    assert float(data.terminals.sum()) == 0.0                     # a continuing task never terminates
    assert float(data.truncations.sum()) == ds.total_episodes     # every episode ends by success or time
    assert info.has_rewards


def test_recovered_environment_and_normalised_scores(minari_root):
    ds = minari.load_dataset(MAZE_ID)
    env = ds.recover_environment(eval_env=True)
    assert env.spec.kwargs["reset_target"] is False and env.spec.max_episode_steps == 300
    controller = pointmaze.WaypointController(env)
    expert = mean_return(env, controller, 30, seed=123)
    random = mean_return(env, lambda o, rng: rng.uniform(-1, 1, 2).astype(np.float32), 30, seed=123)
    assert abs(minari.get_normalized_score(ds, np.array(expert)) - 1.0) < 0.1
    assert abs(minari.get_normalized_score(ds, np.array(random))) < 0.1
    _, info = D.load_transitions(MAZE_ID)
    np.testing.assert_allclose(info.normalized_score(expert), 100 * minari.get_normalized_score(ds, np.array(expert)))
    assert info.make_env().spec.id == "PointMaze_UMaze-v3"


def test_toy_dataset_terminations_and_truncations_kept_apart(minari_root):
    data, info = D.load_transitions(TOY_ID)
    assert data.size == 600
    term, trunc, ends = (np.asarray(x) for x in (data.terminals, data.truncations, data.episode_ends))
    assert term.sum() > 0 and np.all(term + trunc <= 1) and np.all(ends == np.maximum(term, trunc))
    assert np.all(np.asarray(data.rewards)[term == 1] == 1.0)
    assert info.ref_max_score > info.ref_min_score


@pytest.mark.parametrize("fraction,expected", [(1.0, 3000), (0.4, 1200), (0.05, 150)])
def test_subset_sizes_exact_and_deterministic(fraction, expected):
    a = S.subset_indices(3000, fraction, seed=7)
    assert len(a) == expected and len(np.unique(a)) == expected
    np.testing.assert_array_equal(a, S.subset_indices(3000, fraction, seed=7))
    if fraction < 1:
        assert not np.array_equal(a, S.subset_indices(3000, fraction, seed=8))


def test_episode_subsets_keep_whole_episodes():
    starts = np.array([0, 10, 25, 40, 70])
    idx = S.subset_indices(100, 0.4, 0, "episodes", starts)
    bounds = np.append(starts, 100)
    kept = [e for e in range(5) if np.isin(np.arange(bounds[e], bounds[e + 1]), idx).all()]
    assert len(kept) == 2 and len(idx) == sum(bounds[e + 1] - bounds[e] for e in kept)


def test_vmapped_sampling_never_leaves_its_subset():
    """Property test over random fractions, seeds and keys."""
    rng = np.random.default_rng(0)
    n = 500
    data = D.Transitions(*(jnp.arange(n, dtype=jnp.float32)[:, None] * jnp.ones((1, k)) for k in (3, 2)),
                         *(jnp.arange(n, dtype=jnp.float32) for _ in range(5)))
    for trial in range(5):
        fractions = rng.uniform(0.01, 1.0, size=6)
        seeds = rng.integers(0, 10_000, size=6)
        subsets = S.make_subsets(n, fractions, seeds)
        chex.assert_shape(subsets.idx, (6, int(subsets.count.max())))
        keys = jax.random.split(jax.random.PRNGKey(trial), 6)
        batch = jax.vmap(S.sample_batch, (0, None, 0, None))(keys, data, subsets, 512)
        for g in range(6):
            allowed = set(S.subset_indices(n, fractions[g], seeds[g]).tolist())
            drawn = set(np.asarray(batch.rewards[g]).astype(int).tolist())
            assert drawn <= allowed
            assert len(drawn) > min(len(allowed), 512) // 4           # it does spread over the subset


def test_fraction_outside_unit_interval_is_refused():
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="data fraction must be in \\(0, 1\\]"):
            S.make_subsets(100, [bad], [0])


def test_unknown_dataset_names_both_fixes(minari_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(D.DatasetError) as err:
        D.load_transitions("D4RL/pointmaze/nowhere-v9")
    message = str(err.value)
    assert "neither local" in message and "python -m cdp_jax.datasets generate" in message
    assert "minari download D4RL/pointmaze/nowhere-v9" in message


def test_corrupt_file_gets_one_clear_message(minari_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    generate("toy-reach", num_steps=300, progress=False)
    path = tmp_path / "local/toy/reach-v0/data/main_data.hdf5"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(D.DatasetError, match="corrupt or truncated.*regenerate"):
        D.load_transitions(TOY_ID)


def test_unrecoverable_environment_gets_one_clear_message(minari_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    generate("toy-reach", num_steps=300, progress=False)
    meta_path = tmp_path / "local/toy/reach-v0/data/metadata.json"
    meta = json.loads(meta_path.read_text())
    for key in ("env_spec", "eval_env_spec"):
        spec = json.loads(meta[key])
        spec["entry_point"] = "not_installed_pkg.envs:Missing"
        meta[key] = json.dumps(spec)
    meta_path.write_text(json.dumps(meta))
    _, info = D.load_transitions(TOY_ID)
    with pytest.raises(D.DatasetError, match="cannot be recovered.*Install the package"):
        info.make_env()


def test_generate_cli_refuses_bad_names_and_existing_ids_at_once(minari_root, capsys):
    from cdp_jax.datasets.__main__ import main
    assert main(["generate", "pointmaze-huge", "--steps", "10"]) == 2
    t0 = time.time()
    assert main(["generate", "pointmaze-umaze", "--steps", "1000000"]) == 2       # exists: refused before collecting
    assert time.time() - t0 < 5.0 and "already exists" in capsys.readouterr().err
    assert main(["generate", "toy-reach", "--stepz=3"]) == 2                       # absl flags, one line
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: Unknown command line flag 'stepz'. Did you mean: steps? (`python -m cdp_jax.datasets --help` lists "
        "the flags)"]
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "local/pointmaze/umaze-v0" in out and "3000 steps" in out and "pointmaze-medium" in out


@pytest.mark.parametrize("field", ["observations", "actions", "rewards"])
def test_non_finite_values_are_refused_at_load(minari_root, field):
    import gymnasium as gym
    import minari
    from cdp_jax.datasets.generators.writing import episode_buffer
    arrays = dict(observations=np.zeros((6, 2), np.float32), actions=np.zeros((5, 1), np.float32),
                  rewards=np.ones(5))
    arrays[field][3] = np.inf if field == "rewards" else np.nan
    dataset_id = f"local/test/nonfinite-{field}-v0"
    minari.create_dataset_from_buffers(dataset_id, [episode_buffer(arrays["observations"], arrays["actions"],
                                       arrays["rewards"], np.zeros(5), np.ones(5))],
                                       env=gym.make("MountainCarContinuous-v0"))
    with pytest.raises(D.DatasetError, match=f"NaN/inf values in its {field} \\(first in row 3\\); clean or regenerate"):
        D.load_transitions(dataset_id)


def test_unknown_dataset_fails_fast_without_a_network(minari_root, monkeypatch):
    """Without HF_HUB_OFFLINE the huggingface client retries for ~23 s; the reachability probe answers at once."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    from cdp_jax.datasets import loading
    if loading.hub_reachable():                  # a machine with a network: take it away
        monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    t0 = time.time()
    with pytest.raises(D.DatasetError, match="neither local .*no network"):
        D.load_transitions("mujoco/hopper/nowhere-v9")
    assert time.time() - t0 < 8.0
