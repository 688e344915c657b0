"""D4RL's own files, read as they are: written here in D4RL's layout (Hopper-v4 rollouts, the environment that
evaluates them), split into transitions by D4RL's rule, replayed state by state, downloaded from a local server."""
import functools
import http.server
import os
import threading

import gymnasium as gym
import h5py
import numpy as np
import pytest

from cdp_jax.datasets import d4rl
from cdp_jax.datasets.loading import DatasetError


def write_d4rl(path, steps=120, episode_steps=40, next_observations=True, compression="gzip", seed=0,
               env_id="Hopper-v4"):
    """A file in D4RL's layout from random-action episodes of ``env_id`` cut at ``episode_steps`` (timeouts) or when
    the robot falls (terminals), with ``infos/qpos``, ``infos/qvel`` as D4RL records them (the state before the step)."""
    env = gym.make(env_id, max_episode_steps=episode_steps)
    rng = np.random.default_rng(seed)
    cols = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations",
                            "qpos", "qvel")}
    obs, _ = env.reset(seed=seed)
    while len(cols["rewards"]) < steps:
        qpos, qvel = env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy()
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        nxt, reward, terminated, truncated, _ = env.step(action)
        for key, value in (("observations", obs), ("actions", action), ("rewards", reward), ("terminals", terminated),
                           ("timeouts", truncated and not terminated), ("next_observations", nxt), ("qpos", qpos),
                           ("qvel", qvel)):
            cols[key].append(value)
        obs = env.reset()[0] if terminated or truncated else nxt
    env.close()
    with h5py.File(path, "w") as f:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts") + (
                ("next_observations",) if next_observations else ()):
            f.create_dataset(key, data=np.asarray(cols[key]), compression=compression)
        f.create_dataset("infos/qpos", data=np.asarray(cols["qpos"]))
        f.create_dataset("infos/qvel", data=np.asarray(cols["qvel"]))
    return cols


def tiny(path, obs, timeouts, terminals, next_observations=None):
    with h5py.File(path, "w") as f:
        n = len(obs)
        f["observations"], f["actions"] = np.asarray(obs, np.float32), np.zeros((n, 3), np.float32)
        f["rewards"] = np.arange(n, dtype=np.float32)
        f["terminals"], f["timeouts"] = np.asarray(terminals, bool), np.asarray(timeouts, bool)
        if next_observations is not None:
            f["next_observations"] = np.asarray(next_observations, np.float32)
    return str(path)


def test_a_file_in_d4rl_layout_loads_with_d4rls_reference_scores_and_evaluation_env(tmp_path):
    cols = write_d4rl(tmp_path / "hopper_medium-v2.hdf5")
    data, info = d4rl.load_transitions(str(tmp_path / "hopper_medium-v2.hdf5"))
    assert data.size == 120 and info.obs_dim == 11 and info.act_dim == 3 and info.eval_env_spec.id == "Hopper-v4"
    np.testing.assert_array_equal(np.asarray(data.next_observations), np.asarray(cols["next_observations"],
                                                                                 np.float32))
    ends = np.asarray(data.episode_ends) > 0
    assert ends.sum() == info.total_episodes == sum(np.asarray(cols["terminals"]) | np.asarray(cols["timeouts"])) + \
        (not (cols["terminals"][-1] or cols["timeouts"][-1]))
    np.testing.assert_array_equal(np.asarray(data.terminals), np.asarray(cols["terminals"], np.float32))
    assert (info.ref_min_score, info.ref_max_score) == (-20.272305, 3234.3)          # d4rl/infos.py
    np.testing.assert_allclose(info.normalized_score([-20.272305, 3234.3]), [0.0, 100.0])
    assert info.reward_tune == "return_range"


@pytest.mark.parametrize("env", ["hopper", "walker2d", "halfcheetah"])
def test_replaying_the_recorded_states_reproduces_the_next_observations_and_rewards(tmp_path, env):
    path = str(tmp_path / f"{env}_random-v2.hdf5")
    write_d4rl(path, env_id=d4rl.EVAL_ENVS[env])
    same = d4rl.replay_error(path)
    assert same["env"] == d4rl.EVAL_ENVS[env] and same["rows"] > 80
    assert same["max_obs_error"] < 1e-5 and same["max_reward_error"] < 1e-5      # the file's float32 rounding


def test_without_next_observations_timeout_rows_are_dropped_as_d4rls_qlearning_dataset_does(tmp_path):
    """Rows 0-6; a timeout at row 3 (its next row starts the next episode), a terminal at row 5. Kept: 0, 1, 2
    (2 ends its episode, truncated: the timeout row after it is dropped), 4, 5 (terminal); row 6 has no next row."""
    obs = np.arange(7 * 2, dtype=np.float32).reshape(7, 2)
    path = tiny(tmp_path / "hopper_x.hdf5", obs, timeouts=[0, 0, 0, 1, 0, 0, 0], terminals=[0, 0, 0, 0, 0, 1, 0])
    rows = d4rl.transitions(d4rl.read(path))
    np.testing.assert_array_equal(rows["rewards"], [0, 1, 2, 4, 5])
    np.testing.assert_array_equal(rows["next_observations"], obs[[1, 2, 3, 5, 6]])
    np.testing.assert_array_equal(rows["terminals"], [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(rows["truncations"], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(rows["episode_ends"], [0, 0, 1, 0, 1])


def test_misaligned_timeouts_are_cut_where_the_next_observation_jumps(tmp_path):
    """Next observations given: row 2's next observation is not row 3's observation (an episode end without a
    flag), and the timeout flag sits on row 4 although its episode goes on (misaligned): both rows end an episode,
    row 2's without bootstrapping across the jump; no row is dropped."""
    obs = np.arange(6 * 2, dtype=np.float32).reshape(6, 2)
    nxt = np.concatenate([obs[1:], obs[-1:] + 100])
    nxt[2] = [-1, -1]                                  # the real end: a jump to another episode's start
    path = tiny(tmp_path / "walker2d_y.hdf5", obs, timeouts=[0, 0, 0, 0, 1, 0], terminals=[0] * 6,
                next_observations=nxt)
    rows = d4rl.transitions(d4rl.read(path))
    np.testing.assert_array_equal(rows["next_observations"], nxt)
    np.testing.assert_array_equal(rows["episode_ends"], [0, 0, 1, 0, 1, 1])
    np.testing.assert_array_equal(rows["truncations"], [0, 0, 1, 0, 1, 1])
    assert not rows["terminals"].any()


def test_bad_files_and_names_are_refused_in_one_line(tmp_path):
    obs = np.zeros((4, 11), np.float32)
    with h5py.File(tmp_path / "hopper_a.hdf5", "w") as f:
        f["observations"], f["actions"] = obs, np.zeros((4, 3), np.float32)
    with pytest.raises(DatasetError, match=r"lacks the D4RL arrays \['rewards', 'terminals', 'timeouts'\]; it has "
                                           r"\['actions', 'observations'\]"):
        d4rl.load_transitions(str(tmp_path / "hopper_a.hdf5"))
    path = tiny(tmp_path / "hopper_b.hdf5", obs, timeouts=[0] * 3, terminals=[0] * 4)
    with pytest.raises(DatasetError, match="arrays have different lengths"):
        d4rl.load_transitions(path)
    bad = obs.copy()
    bad[2, 5] = np.nan
    path = tiny(tmp_path / "hopper_c.hdf5", bad, timeouts=[0] * 4, terminals=[0] * 4)
    with pytest.raises(DatasetError, match=r"1 NaN/inf values in its observations \(first in row 2\)"):
        d4rl.load_transitions(path)
    with pytest.raises(DatasetError, match="unknown D4RL dataset 'd4rl/hopper-mediocre-v2'; the known ones are "
                                           "d4rl/hopper-random-v2, d4rl/hopper-medium-v2"):
        d4rl.load_transitions("d4rl/hopper-mediocre-v2")
    path = tiny(tmp_path / "robot.hdf5", obs, timeouts=[0] * 4, terminals=[0] * 4)
    with pytest.raises(DatasetError, match="the file name must say its environment"):
        d4rl.load_transitions(path)
    wrong = tiny(tmp_path / "halfcheetah_d.hdf5", obs, timeouts=[0] * 4, terminals=[0] * 4)
    with pytest.raises(DatasetError, match="has observations of 11 and actions of 3 numbers, but HalfCheetah-v4"):
        d4rl.load_transitions(wrong)


@pytest.fixture()
def server(tmp_path):
    """A local HTTP server holding D4RL's file names."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/datasets"
    httpd.shutdown()


def test_a_named_dataset_downloads_on_first_use_from_the_mirror_and_failures_name_url_and_place(server, tmp_path,
                                                                                               monkeypatch):
    root, base = server
    (root / "datasets").mkdir()
    write_d4rl(root / "datasets" / "hopper_medium_replay-v2.hdf5")
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    monkeypatch.setenv("D4RL_MIRROR", base)
    assert d4rl.url("x/hopper_medium_replay-v2.hdf5") == f"{base}/hopper_medium_replay-v2.hdf5"
    data, info = d4rl.load_transitions("d4rl/hopper-medium-replay-v2")
    assert data.size == 120 and os.path.exists(tmp_path / "d4rl" / "hopper_medium_replay-v2.hdf5")
    assert not os.path.exists(tmp_path / "d4rl" / "hopper_medium_replay-v2.hdf5.part")
    expected = tmp_path / "d4rl" / "hopper_expert-v2.hdf5"
    with pytest.raises(DatasetError, match=rf"{base}/hopper_expert-v2.hdf5 answered HTTP 404 .*copy the file by hand "
                                           rf"to {expected}"):
        d4rl.load_transitions("d4rl/hopper-expert-v2")
    monkeypatch.setenv("D4RL_MIRROR", "http://127.0.0.1:9/datasets")               # nothing listens there
    with pytest.raises(DatasetError, match=rf"cannot reach http://127.0.0.1:9/datasets/hopper_expert-v2.hdf5 .*copy "
                                           rf"it to {expected}"):
        d4rl.load_transitions("d4rl/hopper-expert-v2")
    assert not os.path.exists(expected)
    monkeypatch.delenv("D4RL_MIRROR")
    assert d4rl.url(str(expected)) == "http://rail.eecs.berkeley.edu/datasets/offline_rl/gym_mujoco_v2/" \
                                      "hopper_expert-v2.hdf5"


@pytest.mark.slow
def test_a_sweep_trains_and_evaluates_on_a_d4rl_file_with_the_paper_config(tmp_path):
    """The Table 1 config on a D4RL file given by its path: EDP/CDP train on it and are evaluated in Hopper-v4, the
    normalised score from D4RL's reference returns."""
    from cdp_jax.train.sweep import Sweep
    from experiments.configs.d4rl_mujoco import get_config
    path = str(tmp_path / "hopper_medium_replay-v2.hdf5")
    write_d4rl(path, steps=300, episode_steps=100)
    cfg = get_config("hopper-medium-replay")
    cfg.dataset_id = path
    cfg.seeds, cfg.data_fractions, cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 1, (1.0,), 2, 2, 1
    cfg.batch_size, cfg.consistency_states, cfg.consistency_samples = 16, 4, 2
    cfg.agent_config.num_candidates, cfg.agent_config.critic_hidden = 2, 16
    cfg.agent_config.diffusion.update(hidden=16)
    rows = Sweep(cfg, str(tmp_path / "sweep"), progress=False).run()
    assert [r["gamma"] for r in rows] == [0.0, 0.1] and all(r["dataset_id"] == path for r in rows)
    for r in rows:
        np.testing.assert_allclose(r["normalized_score"], 100 * (r["return"] + 20.272305) / (3234.3 + 20.272305),
                                   rtol=1e-5)
    assert "cleandiffuser" in (tmp_path / "sweep" / "summary.md").read_text()
