"""Batched gymnasium rollouts of every grid member at once, and the action-consistency metric.

Each environment step is ONE jitted call that samples actions for all members and all their environments
(vmap over members of ``agent.act``); the environments live in one :class:`cdp_jax.envs.pool.EnvPool`, stepped in
this process (fastest on two cores) or over worker processes (a many-core GPU host).
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cdp_jax.datasets import DatasetInfo, Normalizer
from cdp_jax.train import distributed
from cdp_jax.envs.pool import MEASURED_ENVS, EnvPool, envs_that_fit, start_measuring

_TOLD: set = set()                      # environment ids whose evaluation was split for memory, told once each


def _bounded_by_memory(members: int, num_episodes: int, max_envs: int) -> bool:
    """Whether :func:`evaluate` bounds its environments by the memory available: automatically (``max_envs`` 0),
    for more than one member, and more environments than the memory measurement itself builds."""
    return max_envs == 0 and members > 1 and members * num_episodes > 1 + MEASURED_ENVS


def num_waves(members: int, num_episodes: int, max_envs: int) -> int:
    """How many waves :func:`evaluate` runs ``members`` in, each member with all its episodes, at most ``max_envs``
    environments at once (0: no bound, one wave)."""
    return 1 if max_envs == 0 else -(-members // max(1, max_envs // num_episodes))


def plan_workers(members: int, num_episodes: int, workers: int, fits: Callable[[int], int]) -> tuple[int, int]:
    """``(workers, max_envs)`` for a memory-bounded evaluation: the most worker processes, up to ``workers`` (and one
    per environment), that add no wave to the fewest any count allows, and the environments that fit with them.
    ``fits(w)``: how many environments fit beside ``w`` processes (:func:`cdp_jax.envs.pool.envs_that_fit`; each
    worker's own base memory counts against it, so on a small machine two workers can leave room for one environment
    fewer than stepping them in this process, and a second wave of sampler calls costs more than the workers save:
    575 s against 540 s for 90 robosuite Lift environments on two cores)."""
    fit = {w: fits(w) for w in range(1, max(1, min(workers, members * num_episodes)) + 1)}   # EnvPool's own cap
    fewest = min(num_waves(members, num_episodes, m) for m in fit.values())
    best = max(w for w, m in fit.items() if num_waves(members, num_episodes, m) == fewest)
    return best, fit[best]


def start_memory_measurement(info: DatasetInfo, members: int, num_episodes: int, max_envs: int = 0) -> None:
    """Starts, in the background, the measurement of one environment's memory that :func:`evaluate` will need with
    these arguments (a sweep calls it before it compiles, so the measurement costs no wall time)."""
    if info.eval_env_spec is not None and _bounded_by_memory(members, num_episodes, max_envs):
        start_measuring(info.eval_env_spec)


def grid_actor(act_fn: Callable) -> Callable:
    """Jits ``act_fn(agent, obs [E, obs_dim], key) -> [E, act_dim]`` over a stacked grid as
    ``act(agents [G], obs [G, E, obs_dim], keys [G], t) -> [G, E, act_dim]``: member g acts at episode step ``t``
    with ``fold_in(keys[g], t)``, folded inside the one compiled call of each step."""
    step_keys = jax.vmap(jax.random.fold_in, (0, None))
    return jax.jit(lambda agents, obs, keys, t: jax.vmap(act_fn)(agents, obs, step_keys(keys, t)))


def evaluate(agents, act: Callable, info: DatasetInfo, normalizer: Normalizer, keys: jax.Array,
             num_episodes: int, seed: int = 0, workers: int = 1, return_clip: tuple = (),
             max_envs: int = 0) -> dict[str, np.ndarray]:
    """Runs ``num_episodes`` episodes per member, all members in lockstep.

    Args:
      agents: stacked agents ``[G]``; ``act`` from :func:`grid_actor`.
      keys: ``[G]`` PRNG keys (one per member, so results do not depend on the grid's composition).
      seed: environment reset seeds are ``seed + episode`` for every member (paired comparisons).
      workers: processes that step the ``G * num_episodes`` environments (:class:`cdp_jax.envs.pool.EnvPool`);
        under the automatic memory bound fewer where more would add a wave (:func:`plan_workers`). The results do
        not depend on it.
      return_clip: ``(low, high)`` applied to each episode's return before the normalised score (the official
        evaluation clips kitchen returns to [0, 4] and antmaze returns to [0, 1]); ``()`` leaves them.
      max_envs: the most environments alive at once; 0: as many as fit in half the memory available now, one
        environment's memory measured once per process (:func:`cdp_jax.envs.pool.envs_that_fit`). Above it the
        members run in waves of nearly equal size, each of at least one member with all its episodes; as each
        member has its own key, the results do not depend on it. A robosuite environment holds about 100 MB, so
        18 members x 10 episodes at once take 19 GB. Not bounded for one member, nor for at most five
        environments in all: the measurement builds as many itself (a robosuite image environment: about 10 s).
    Returns:
      ``return``, ``normalized_score`` (x100, NaN without reference scores), ``success`` (any step reported
      ``info["success"]``, NaN if never reported): arrays ``[G]`` averaged over episodes.
    """
    g, e = keys.shape[0], num_episodes
    if info.eval_env_spec is None:
        info.make_env()                                    # raises the one-line DatasetError
    if max_envs < 0:
        raise ValueError(f"max_envs must be >= 0 (0: as many as fit in memory), got {max_envs}")
    if _bounded_by_memory(g, e, max_envs):
        asked = workers
        workers, max_envs = plan_workers(g, e, workers, lambda w: envs_that_fit(info.eval_env_spec, w))
        told = []
        if 0 < max_envs < g * e:
            told.append(f"at most {max_envs} of the {g * e} {info.eval_env_spec.id} environments fit in half the "
                        f"available memory at once (members in waves, same results; eval_max_envs sets it)")
        if workers < asked:
            told.append(f"{workers} worker process(es) instead of {asked}: each one's own memory would leave room "
                        f"for fewer environments and add a wave")
        if told and info.eval_env_spec.id not in _TOLD:
            _TOLD.add(info.eval_env_spec.id)
            print("evaluation: " + "; ".join(told), file=sys.stderr)
    waves = num_waves(g, e, max_envs)
    parts = [_rollouts(jax.tree.map(lambda x: x[m[0]:m[-1] + 1], agents), act, info, normalizer, keys[m[0]:m[-1] + 1],
                       e, seed, workers) for m in np.array_split(np.arange(g), waves)]
    returns, success = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    reports_success = any(p[2] for p in parts)
    has_ref = info.ref_min_score is not None and info.ref_max_score is not None
    scored = np.clip(returns, *return_clip) if return_clip else returns
    score = info.normalized_score(scored).mean(1) if has_ref else np.full(g, np.nan)
    return {"return": returns.mean(1), "normalized_score": score,
            "success": success.mean(1) if reports_success else np.full(g, np.nan)}


def _rollouts(agents, act, info, normalizer, keys, e, seed, workers):
    """``(returns [G, e], success [G, e], whether any step reported success)`` of one wave of members."""
    g = keys.shape[0]
    done = np.zeros(g * e, bool)
    returns, success = np.zeros(g * e), np.zeros(g * e)
    reports_success = False
    with EnvPool(info.eval_env_spec, info.obs_layout, g * e, workers) as pool:
        obs = pool.reset(np.tile(seed + np.arange(e), g))
        t = 0
        while not done.all():
            actions = np.asarray(act(agents, jnp.asarray(normalizer.obs(obs.reshape(g, e, -1))), keys, t))
            active = ~done
            new_obs, reward, finished, succ = pool.step(normalizer.to_env_action(actions).reshape(g * e, -1), active)
            obs[active], returns[active] = new_obs[active], returns[active] + reward[active]
            reported = active & ~np.isnan(succ)
            reports_success |= bool(reported.any())
            success[reported] = np.maximum(success[reported], succ[reported])
            done |= finished
            t += 1
    return returns.reshape(g, e), success.reshape(g, e), reports_success


@functools.partial(jax.jit, static_argnames="num_samples")
def _action_spread(agents, states, key, num_samples):
    def one(agent):
        acts = jax.vmap(lambda k: agent.act(states, k))(jax.random.split(key, num_samples))   # [K, S, act_dim]
        return jnp.mean(jnp.std(acts, axis=0))
    return jax.vmap(one)(agents)


def action_spread(agents, states: jax.Array, key: jax.Array, num_samples: int = 8) -> np.ndarray:
    """Action consistency: the std of sampled actions (``agent.act``) across sampler noise at fixed states, averaged
    over states and action dims: ``[G]``. ``states [S, obs_dim]`` are already normalised. Compiled once per grid."""
    return np.asarray(_action_spread(agents, states, key, num_samples))


@jax.jit
def _candidate_spread(agents, states, key):
    def one(agent):
        _, cands = agent.candidates(states, key, agent.config.num_candidates, agent.config.candidate_temperature)
        return jnp.mean(jnp.std(cands, axis=1))                                         # [S, num, d] -> scalar
    return jax.vmap(one)(agents)


def candidate_spread(agents, states: jax.Array, key: jax.Array) -> np.ndarray:
    """What an RL agent's selection feeds on: the std across its ``num_candidates`` candidate actions at each state,
    before softmax(Q) picks one, averaged over states and action dims: ``[G]`` (``action_std`` is measured after
    the pick). NaN for agents that do not select among candidates."""
    if not hasattr(agents, "candidates") or agents.config.get("num_candidates", 1) < 2:
        return np.full(jax.tree.leaves(agents)[0].shape[0], np.nan)
    return np.asarray(_candidate_spread(agents, states, key))


@functools.partial(jax.jit, static_argnames="fraction")
def _low_noise_lambda_max(agents, states, actions, key, fraction):
    k_t, k_e, k_l = jax.random.split(key, 3)

    def one(agent):
        den = agent.denoiser
        t = jax.random.randint(k_t, (states.shape[0],), 0, max(1, int(den.schedule.num_steps * fraction)))
        x_t = den.q_sample(actions, t, jax.random.normal(k_e, actions.shape))
        iters = None if actions.shape[-1] <= 32 else 20     # exact eigvalsh, or Lanczos for action chunks
        return den.max_eigenvalue(agent.ema_params, k_l, x_t, t, states, num_iters=iters).mean()

    return jax.vmap(one)(agents)


def low_noise_lambda_max(agents, states: jax.Array, actions: jax.Array, key: jax.Array,
                         fraction: float = 0.1) -> np.ndarray:
    """Mean exact ``lambda_max(J_sym)`` of each member's EMA x0-network at levels ``t < fraction * T``, at
    dataset ``(state, action)`` pairs noised to those levels: ``[G]`` (NaN for non-diffusion agents)."""
    if not hasattr(agents, "denoiser"):
        return np.full(jax.tree.leaves(agents)[0].shape[0], np.nan)
    return np.asarray(_low_noise_lambda_max(agents, states, actions, key, float(fraction)))


def member_rows(cfg, members: list[dict], act: Callable, info: DatasetInfo, norm: Normalizer, step: int, agents,
                diverged, seeds, probe_obs, probe_act) -> list[dict]:
    """One results row per member at ``step``: score, return and success over ``cfg.eval_episodes`` episodes, the
    action spread and λmax at the probe states. Across processes each one evaluates its own block of members."""
    size = len(members)
    block = distributed.local_block(size)
    if distributed.multi_process():        # this process's members, as local arrays (one process: all, as is)
        agents = jax.tree.map(lambda x: jnp.asarray(x[block]), distributed.to_host(agents))
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(s), 2), step))(seeds[block])
    scores = evaluate(agents, act, info, norm, keys, cfg.eval_episodes, cfg.eval_seed,
                      workers=cfg.eval_workers or os.cpu_count(), return_clip=tuple(cfg.eval_return_clip),
                      max_envs=cfg.eval_max_envs)
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.eval_seed), step)
    local = np.stack([scores["normalized_score"], scores["return"], scores["success"],
                      action_spread(agents, probe_obs, key, cfg.consistency_samples),
                      candidate_spread(agents, probe_obs, key),
                      low_noise_lambda_max(agents, probe_obs, probe_act, key)], axis=1)
    score, ret, success, spread, candidates, lam = distributed.gather_blocks(local, size).T
    div = distributed.to_host(diverged)
    return [dict(dataset_id=cfg.dataset_id, agent=cfg.agent, seed=m["seed"], data_fraction=m["data_fraction"],
                 gamma=m["gamma"], step=step, normalized_score=float(score[i]), **{"return": float(ret[i])},
                 success=float(success[i]), action_std=float(spread[i]), candidate_std=float(candidates[i]),
                 lambda_max=float(lam[i]), diverged=int(div[i]))
            for i, m in enumerate(members)]
