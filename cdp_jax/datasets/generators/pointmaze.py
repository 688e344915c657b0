"""PointMaze datasets by the D4RL / Minari maze2d recipe.

Collection: gymnasium-robotics ``PointMaze_<Maze>-v3`` as a continuing task that draws a new goal whenever the
current one is reached (``continuing_task=True, reset_target=True``). A waypoint planner (BFS over the maze
grid) gives the next cell centre on a shortest path to the goal cell; the PD controller
``10 * (waypoint - position) - 1 * velocity`` plus N(0, 0.5^2) noise, clipped to [-1, 1], gives the action.
Episodes are split when the goal is reached (a truncation: the task goes on with the new goal) and at
``max_episode_steps`` (then the environment is reset).

Evaluation (the dataset's ``eval_env``): the same maze with ``reset_target=False`` and the same time limit; the
sparse reward counts the steps spent within 0.45 of the goal. ``ref_max_score`` is the noiseless controller's
mean return there and ``ref_min_score`` a uniform random policy's, so ``minari.get_normalized_score`` works.
"""
from __future__ import annotations

import collections

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from cdp_jax.datasets.generators.writing import episode_buffer, mean_return, write_dataset
from cdp_jax.envs.pool import register_robotics_envs
from cdp_jax.io import stopping

MAZES = {"open": ("PointMaze_Open-v3", 300), "umaze": ("PointMaze_UMaze-v3", 300),
         "medium": ("PointMaze_Medium-v3", 600), "large": ("PointMaze_Large-v3", 800)}
P_GAIN, D_GAIN, ACTION_NOISE = 10.0, 1.0, 0.5


class WaypointController:
    """Shortest-path waypoints over the maze grid and a PD controller toward them.

    ``__call__(obs, rng)`` takes a PointMaze observation dict and returns an action in [-1, 1]^2.
    """

    def __init__(self, env: gym.Env, noise: float = 0.0):
        self.maze = env.unwrapped.maze
        self.noise = noise
        self.free = np.array([[cell != 1 for cell in row] for row in self.maze.maze_map])
        self._next = {}

    def _next_cells(self, goal_cell: tuple[int, int]) -> dict:
        """For every free cell, the neighbour one BFS step closer to ``goal_cell`` (cached per goal cell)."""
        if goal_cell not in self._next:
            dist = {goal_cell: 0}
            queue = collections.deque([goal_cell])
            while queue:
                r, c = queue.popleft()
                for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                    if (0 <= nr < self.free.shape[0] and 0 <= nc < self.free.shape[1] and self.free[nr, nc]
                            and (nr, nc) not in dist):
                        dist[(nr, nc)] = dist[(r, c)] + 1
                        queue.append((nr, nc))
            nxt = {}
            for (r, c), d in dist.items():
                options = [(dist.get(n, np.inf), n) for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1))]
                nxt[(r, c)] = min(options)[1] if d > 0 else (r, c)
            self._next[goal_cell] = nxt
        return self._next[goal_cell]

    def waypoint(self, position: np.ndarray, goal: np.ndarray) -> np.ndarray:
        cell = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(position))
        goal_cell = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(goal))
        if cell == goal_cell:
            return goal
        nxt = self._next_cells(goal_cell).get(cell)
        if nxt is None:                                  # numerically inside a wall: head for the goal
            return goal
        if nxt == goal_cell:
            return goal
        return np.asarray(self.maze.cell_rowcol_to_xy(np.array(nxt)), np.float64)

    def __call__(self, obs: dict, rng: np.random.Generator) -> np.ndarray:
        state = obs["observation"]
        position, velocity = state[:2], state[2:4]
        action = P_GAIN * (self.waypoint(position, obs["desired_goal"]) - position) - D_GAIN * velocity
        if self.noise:
            action = action + rng.normal(0.0, self.noise, size=2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def eval_env(maze: str) -> gym.Env:
    register_robotics_envs()                            # on use: it imports mujoco, which starts MUJOCO_GL
    env_id, max_steps = MAZES[maze]
    return gym.make(env_id, continuing_task=True, reset_target=False, max_episode_steps=max_steps)


def _stack_obs(obs_list: list[dict]) -> dict:
    return {k: np.stack([o[k] for o in obs_list]).astype(np.float64) for k in obs_list[0]}


def collect(maze: str, num_steps: int, seed: int = 0, progress: bool = True) -> list:
    """``num_steps`` transitions as a list of Minari ``EpisodeBuffer``s."""
    env_id, max_steps = MAZES[maze]
    register_robotics_envs()
    env = gym.make(env_id, continuing_task=True, reset_target=True, max_episode_steps=max_steps)
    controller = WaypointController(env, noise=ACTION_NOISE)
    rng = np.random.default_rng(seed)
    episodes, reset_count = [], 0
    obs, _ = env.reset(seed=seed)
    obs_list, acts, rews, terms, truncs = [obs], [], [], [], []
    with tqdm(total=num_steps, desc=f"pointmaze-{maze}", unit="step", disable=not progress, mininterval=1.0) as bar:
        for step in range(num_steps):
            stopping.check()
            action = controller(obs, rng)
            next_obs, reward, terminated, truncated, info = env.step(action)
            success = bool(info.get("success", False))
            last = step == num_steps - 1
            obs_list.append(next_obs)
            acts.append(action), rews.append(reward), terms.append(terminated)
            truncs.append(bool(truncated or success or last) and not terminated)
            bar.update(1)
            if terminated or truncated or success or last:
                episodes.append(episode_buffer(_stack_obs(obs_list), acts, rews, terms, truncs))
                if terminated or truncated:
                    reset_count += 1
                    next_obs, _ = env.reset(seed=seed + reset_count)
                else:                                         # goal reached: same state, the new goal
                    next_obs = dict(next_obs, desired_goal=env.unwrapped.goal.copy())
                obs_list, acts, rews, terms, truncs = [next_obs], [], [], [], []
            obs = next_obs
    env.close()
    return episodes


def reference_scores(maze: str, num_episodes: int = 100, seed: int = 10_000) -> tuple[float, float]:
    """``(ref_min_score, ref_max_score)``: a uniform random policy and the noiseless controller on the eval setup."""
    env = eval_env(maze)
    expert = mean_return(env, WaypointController(env), num_episodes, seed)
    random = mean_return(env, lambda obs, rng: rng.uniform(-1, 1, size=2).astype(np.float32), num_episodes, seed)
    env.close()
    return random, expert


def generate(maze: str, dataset_id: str, num_steps: int = 1_000_000, seed: int = 0, overwrite: bool = False,
             ref_episodes: int = 100, progress: bool = True) -> str:
    """Collects and writes ``pointmaze-<maze>``; returns the dataset folder."""
    if maze not in MAZES:
        raise ValueError(f"unknown maze {maze!r}; choose one of {sorted(MAZES)}")
    episodes = collect(maze, num_steps, seed, progress)
    ref_min, ref_max = reference_scores(maze, ref_episodes)
    env_id, max_steps = MAZES[maze]
    data_env = gym.make(env_id, continuing_task=True, reset_target=True, max_episode_steps=max_steps)
    evaluation = eval_env(maze)
    try:
        return write_dataset(
            dataset_id, episodes, env_spec=data_env.spec, eval_env_spec=evaluation.spec, ref_min_score=ref_min,
            ref_max_score=ref_max, algorithm_name="cdp_jax.datasets.generators.pointmaze WaypointController (BFS + PD)",
            description=__doc__, overwrite=overwrite)
    finally:
        data_env.close(), evaluation.close()
