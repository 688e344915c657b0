"""EnvPool: worker processes step the same environments as the in-process pool, value for value; an environment's
memory is measured against a known allocation; the evaluation in waves of members gives the results of all members
at once, and it splits into waves by itself when the environments would not fit in memory."""
import os
import signal

import gymnasium as gym
import numpy as np
import pytest

from cdp_jax.envs import pool
from cdp_jax.envs.pool import EnvMemory, EnvPool, register_robotics_envs

register_robotics_envs()

LAYOUT = (("observation", 4), ("desired_goal", 2))


def rollout(workers, n=5, steps=30):
    rng = np.random.default_rng(0)
    with EnvPool(gym.spec("PointMaze_UMaze-v3"), LAYOUT, n, workers) as pool:
        out = [pool.reset(np.arange(n) + 7)]
        active = np.ones(n, bool)
        for t in range(steps):
            active[t % n] = t < 10 or active[t % n]           # some envs sit out some steps
            active[(t + 2) % n] = t % 3 != 0
            out += list(pool.step(rng.uniform(-1, 1, (n, 2)), active.copy()))
    return out


def test_workers_give_the_in_process_results_exactly():
    local, split = rollout(1), rollout(3)
    assert len(local) == len(split)
    for a, b in zip(local, split):
        np.testing.assert_array_equal(a, b)
    assert local[0].shape == (5, 6)


def test_inactive_envs_are_not_stepped():
    with EnvPool(gym.spec("PointMaze_UMaze-v3"), LAYOUT, 2) as pool:
        first = pool.reset(np.array([0, 0]))
        obs, reward, done, _ = pool.step(np.ones((2, 2)), np.array([True, False]))
        assert not np.array_equal(obs[0], first[0]) and np.all(obs[1] == 0) and reward[1] == 0 and not done[1]
        again, *_ = pool.step(np.ones((2, 2)), np.array([False, True]))
        np.testing.assert_array_equal(again[1], obs[0])             # env 1 now takes the step env 0 took


def test_a_failing_worker_env_raises_one_message():
    with EnvPool(gym.spec("PointMaze_UMaze-v3"), LAYOUT, 2, workers=2) as pool:
        pool.reset(np.array([0, 1]))
        with pytest.raises(RuntimeError, match="evaluation environment failed"):
            pool.step(np.ones((2, 5)), np.array([True, True]))       # wrong action shape


def test_workers_outlive_a_group_signal_and_a_dead_worker_is_one_message():
    """SIGTERM/SIGINT sent to the whole process group (``timeout``, Ctrl-C) leave the workers to the parent, whose
    graceful stop then finishes its evaluation; a worker killed outright gives one message, and close() still works."""
    pool = EnvPool(gym.spec("PointMaze_UMaze-v3"), LAYOUT, 2, workers=2)
    try:
        first = pool.reset(np.array([0, 1]))
        for proc in pool.procs:
            os.kill(proc.pid, signal.SIGTERM)
            os.kill(proc.pid, signal.SIGINT)
        np.testing.assert_array_equal(pool.reset(np.array([0, 1])), first)
        os.kill(pool.procs[1].pid, signal.SIGKILL)
        pool.procs[1].join(timeout=10)
        with pytest.raises(RuntimeError, match=r"worker process died \(exit codes \[None, -9\]"):
            pool.step(np.ones((2, 2)), np.array([True, True]))
    finally:
        pool.close()
    assert not any(p.is_alive() for p in pool.procs)


BLOB_BYTES = 48 << 20


class BlobEnv(gym.Env):
    """An environment that holds a known 48 MiB of memory (written, so resident)."""
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (2,))

    def __init__(self):
        self.blob = np.ones(BLOB_BYTES // 8)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}


def test_environment_memory_is_the_memory_an_environment_holds():
    spec = gym.envs.registration.EnvSpec("BlobEnv-v0", entry_point=BlobEnv)
    pool.start_measuring(spec)                                 # in the background, as a sweep starts it
    assert repr(spec) in pool._MEASURING
    memory = pool.environment_memory(spec)                     # collects it
    assert not pool._MEASURING
    assert BLOB_BYTES <= memory.per_env < BLOB_BYTES + (4 << 20), memory
    assert memory.base > BLOB_BYTES                              # the interpreter, gymnasium and the first env
    assert pool.environment_memory(spec) is memory            # measured once per process
    available = pool.available_memory()
    with open("/proc/meminfo") as f:
        total = int(f.readline().split()[1]) * 1024
    assert 0 < available <= total


def test_environments_that_fit_in_half_the_available_memory(monkeypatch):
    spec = gym.spec("PointMaze_UMaze-v3")
    monkeypatch.setitem(pool._MEASURED, repr(spec), EnvMemory(base=300 << 20, per_env=50 << 20))
    monkeypatch.setattr(pool, "available_memory", lambda: 2000 << 20)
    assert pool.envs_that_fit(spec) == 20                      # 1000 MB / 50 MB
    assert pool.envs_that_fit(spec, workers=2) == 8            # (1000 - 2 x 300) / 50: each worker's imports
    assert pool.envs_that_fit(spec, workers=4) == 1            # nothing left: still one at a time
    monkeypatch.setattr(pool, "available_memory", lambda: None)
    assert pool.envs_that_fit(spec) == 0                       # not Linux: no bound


def test_an_environment_that_fails_to_build_leaves_the_evaluation_unbounded():
    spec = gym.envs.registration.EnvSpec("Broken-v0", entry_point="no_such_module:NoEnv")
    assert pool.environment_memory(spec) is None               # the pool will raise the full error itself
    assert pool.envs_that_fit(spec) == 0


def test_evaluation_in_waves_of_members_gives_the_results_of_all_at_once(minari_root, monkeypatch, capsys):
    import jax
    import jax.numpy as jnp

    from cdp_jax.train import evaluation
    from cdp_jax.datasets import Normalizer, load_transitions
    _, info = load_transitions("local/toy/reach-v0")
    d = info.action_space.shape[0]
    # Members differ (their own gain towards a target) and draw noise from their own key, as a diffusion policy does.
    act = evaluation.grid_actor(lambda gain, obs, key: jnp.clip(
        gain * (jnp.array([0.6, 0.6]) - obs[..., :d]) + jax.random.normal(key, obs.shape[:-1] + (d,)), -1, 1))
    gains = jnp.array([0.0, 1.0, 2.0, 4.0, 8.0])
    keys = jax.random.split(jax.random.PRNGKey(3), 5)
    norm = Normalizer.from_info(info, "none")
    run = lambda max_envs: evaluation.evaluate(gains, act, info, norm, keys, 3, seed=11, max_envs=max_envs)
    together = run(100)
    assert len(set(together["return"].tolist())) >= 3               # the members differ: a wrong order would show
    monkeypatch.setattr(evaluation, "envs_that_fit", lambda spec, workers: 7)
    monkeypatch.setattr(evaluation, "_TOLD", set())
    for max_envs in (3, 7, 9, 0):                                 # 1 member per wave, 2 (uneven), 3 (2 waves), auto
        waves = run(max_envs)
        for k in together:
            np.testing.assert_array_equal(waves[k], together[k])
    assert "at most 7 of the 15 cdp_jax/ToyReach-v0 environments fit" in capsys.readouterr().err
    with pytest.raises(ValueError, match="max_envs must be >= 0"):
        run(-1)


def test_worker_processes_never_add_a_wave():
    """Each worker's base memory counts against the bound: the most workers that keep the fewest waves."""
    from cdp_jax.train.evaluation import num_waves, plan_workers
    assert [num_waves(9, 10, m) for m in (0, 90, 89, 20, 9, 1)] == [1, 1, 2, 5, 9, 9]
    assert plan_workers(9, 10, 2, lambda w: 91 - w) == (1, 90)             # two workers: 89 fit, a second wave
    assert plan_workers(9, 10, 4, lambda w: 100 - 5 * w) == (2, 90)        # three: 85, a second wave
    assert plan_workers(9, 10, 4, lambda w: 50 - w) == (4, 46)             # three waves whatever the count
    assert plan_workers(9, 10, 16, lambda w: 0) == (16, 0)                 # memory unknown: no bound
    assert plan_workers(9, 10, 1, lambda w: 30) == (1, 30)
    assert plan_workers(2, 3, 16, lambda w: 100 - w) == (6, 94)           # no more workers than environments


def test_the_evaluation_steps_in_fewer_workers_where_more_would_add_a_wave(minari_root, monkeypatch, capsys):
    import jax
    import jax.numpy as jnp

    from cdp_jax.train import evaluation
    from cdp_jax.datasets import Normalizer, load_transitions
    _, info = load_transitions("local/toy/reach-v0")
    monkeypatch.setattr(evaluation, "envs_that_fit", lambda spec, workers: 16 - workers)   # 15 in process, 14 with 2
    monkeypatch.setattr(evaluation, "_TOLD", set())
    waves = []
    rollouts = evaluation._rollouts
    monkeypatch.setattr(evaluation, "_rollouts", lambda *a: waves.append((len(a[4]), a[-1])) or rollouts(*a))
    act = evaluation.grid_actor(lambda gain, obs, key: jnp.zeros(obs.shape[:-1] + (2,)))
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    evaluation.evaluate(jnp.zeros(5), act, info, Normalizer.from_info(info, "none"), keys, 3, workers=2)
    assert waves == [(5, 1)]                         # 5 members x 3 episodes at once, in this process
    assert "1 worker process(es) instead of 2" in capsys.readouterr().err


def test_an_evaluation_of_five_environments_or_one_member_is_not_measured(minari_root, monkeypatch):
    """The measurement builds five environments itself: for no more than that, or one member, it bounds nothing."""
    import jax
    import jax.numpy as jnp

    from cdp_jax.train import evaluation
    from cdp_jax.datasets import Normalizer, load_transitions
    _, info = load_transitions("local/toy/reach-v0")
    measured = []
    monkeypatch.setattr(evaluation, "envs_that_fit", lambda spec, workers: measured.append(spec) or 0)
    monkeypatch.setattr(evaluation, "start_measuring", lambda spec: measured.append(spec))
    act = evaluation.grid_actor(lambda gain, obs, key: jnp.zeros(obs.shape[:-1] + (2,)))
    norm = Normalizer.from_info(info, "none")
    for members, episodes, expected in ((5, 1, 0), (1, 8, 0), (2, 3, 1)):
        measured.clear()
        keys = jax.random.split(jax.random.PRNGKey(0), members)
        evaluation.start_memory_measurement(info, members, episodes)
        evaluation.evaluate(jnp.zeros(members), act, info, norm, keys, episodes)
        assert len(measured) == 2 * expected, (members, episodes)        # started early, then collected
