"""Your own robosuite demonstrations as a robomimic-layout file, by replaying their recorded states.

    python -m cdp_jax.datasets convert-robosuite demo.hdf5 [--images] [--dataset_id=robomimic/lift/mine/low_dim.hdf5]

The input is what robosuite's own data collection writes: ``robosuite.wrappers.DataCollectionWrapper`` records
each episode, and the gathering step of ``robosuite/scripts/collect_human_demonstrations.py``
(``gather_demonstrations_as_hdf5``) keeps the successful ones in one file: ``data/demo_N/{states, actions}``, the
model XML per demo in ``attrs["model_file"]`` (inline, or the name of a file beside the HDF5 file), and
``data.attrs["env_info"]`` (robosuite 1.4 and 1.5: JSON of ``env_name``, ``robots``, ``controller_configs`` in
either the old or the composite form) or ``data.attrs["env_args"]`` (robomimic's own form). ``states[t]`` is the
simulator state before ``actions[t]``; there are no observations or rewards.

As robomimic's ``convert_robosuite.py`` and ``dataset_states_to_obs.py`` do, each demo is reloaded from its model
XML (``env.edit_model_xml``, which points the meshes at this installation), and at each step the recorded state
is set and the task's observation, reward and success are read; ``dones`` mark each demo's last step. Demos are
written in numeric order (demo_1, demo_2, ..., demo_10), with ``env_args`` as robomimic writes them.

The state-replay error checks that this robosuite is the simulator that recorded the file: from each recorded
state, the recorded action is stepped and the next state compared with the recorded one (largest absolute
difference over the state vector, per demo). MuJoCo is deterministic and the OSC controllers act on the state
alone, so a file recorded by the same robosuite and MuJoCo replays to about 1e-9; another MuJoCo or robosuite
version, or a different controller config, drifts by millimetres within one step. A file whose largest error
exceeds ``tolerance`` (default 1e-3) is refused: its actions would not do in this simulator what they did there.
"""
from __future__ import annotations

import json
import os
import re
import time

import numpy as np

from cdp_jax.datasets.robomimic_hdf5 import write_demos
from cdp_jax.envs import robomimic_env
from cdp_jax.envs.robosuite_compat import RenderingUnavailable
from cdp_jax.io import stopping

TOLERANCE = 1e-3


def demo_names(group) -> list[str]:
    """``demo_N`` keys in numeric order (``demo_2`` before ``demo_10``)."""
    names = [k for k in group.keys() if re.fullmatch(r"demo_\d+", k)]
    return sorted(names, key=lambda k: int(k.split("_")[1]))


def env_args_of(attrs, images: bool, image_size: int) -> dict:
    """robomimic's ``env_args`` for a robosuite collection file's ``data`` attributes."""
    if "env_args" in attrs:
        info = json.loads(attrs["env_args"])
    elif "env_info" in attrs:
        info = json.loads(attrs["env_info"])
    else:
        raise ValueError(f"the file has neither data.attrs['env_info'] (robosuite's collection) nor "
                         f"data.attrs['env_args'] (robomimic's); it has {sorted(attrs)}")
    kwargs = dict(info.get("env_kwargs", {k: v for k, v in info.items() if k not in ("env_name", "type")}))
    name = info.get("env_name") or (attrs["env"] if "env" in attrs else None)
    if not name or "robots" not in kwargs or "controller_configs" not in kwargs:
        raise ValueError(f"the environment record {sorted(info)} lacks env_name, robots or controller_configs")
    kwargs.update(has_renderer=False, has_offscreen_renderer=images, use_camera_obs=images, ignore_done=True,
                  use_object_obs=True, camera_depths=False, camera_heights=image_size, camera_widths=image_size)
    kwargs.setdefault("control_freq", 20)
    kwargs.setdefault("reward_shaping", False)
    if images:
        kwargs["camera_names"] = [k[:-len(robomimic_env.IMAGE_KEY_SUFFIX)] for k in robomimic_env.CAMERAS]
    import robosuite
    return {"env_name": str(name), "type": 1, "env_version": robosuite.__version__, "env_kwargs": kwargs}


def _model_xml(demo, folder: str) -> str:
    model = demo.attrs.get("model_file")
    if model is None:
        raise ValueError(f"{demo.name} has no attrs['model_file'] (the model XML robosuite recorded)")
    model = model.decode() if isinstance(model, bytes) else str(model)
    if model.lstrip().startswith("<"):
        return model
    path = model if os.path.isabs(model) else os.path.join(folder, model)
    if not os.path.exists(path):
        raise ValueError(f"{demo.name}'s model file {model!r} is not at {path}: put it there")
    with open(path) as f:
        return f.read()


def _build(env_args: dict, images: bool):
    task = robomimic_env.task_from_env_name(env_args["env_name"])         # one line for other environments
    keys = robomimic_env.TASKS[task].obs_keys + (robomimic_env.CAMERAS if images else ())
    try:
        return robomimic_env.make_env(env_args, keys)
    except (RenderingUnavailable, ImportError):
        raise
    except Exception as err:                               # noqa: BLE001 - robosuite raises many kinds
        import robosuite
        raise ValueError(f"robosuite {robosuite.__version__} cannot build {env_args['env_name']} with robots "
                         f"{env_args['env_kwargs']['robots']}: {type(err).__name__}: {err}") from None


def replay_demo(env, xml: str, states: np.ndarray, actions: np.ndarray) -> tuple[dict, float]:
    """One demo's robomimic episode from its model XML, ``states [n, s]`` and ``actions [n, a]``: the observation
    at each recorded state, and the reward after each transition, r(s_t+1), read at the recorded next state (after
    stepping the last action for the last), as robomimic's ``dataset_states_to_obs.py`` does. Also the largest
    state-replay error: each action stepped from its recorded state against the next recorded state."""
    sim_env = env.env
    sim_env.reset()
    sim_env.reset_from_xml_string(sim_env.edit_model_xml(xml))

    def set_state(state):
        sim_env.sim.set_state_from_flattened(state)
        sim_env.sim.forward()

    frames, rewards, error = {k: [] for k in env.obs_keys}, [], 0.0
    for t in range(len(states)):
        stopping.check()                                   # the demo is redone on the rerun
        set_state(states[t])
        env.raw = sim_env._get_observations(force_update=True)
        for k, v in env.robomimic_obs().items():
            frames[k].append(v)
        sim_env.step(np.asarray(actions[t], np.float64))
        if t + 1 < len(states):
            error = max(error, float(np.max(np.abs(sim_env.sim.get_state().flatten() - states[t + 1]))))
            set_state(states[t + 1])
        rewards.append(float(sim_env.reward()))
    episode = {"obs": {k: np.stack(v) for k, v in frames.items()}, "actions": np.asarray(actions, np.float64),
               "rewards": np.asarray(rewards), "states": np.asarray(states, np.float64)}
    return episode, error


def convert(path: str, out: str, images: bool = False, image_size: int = 84, tolerance: float = TOLERANCE,
            overwrite: bool = False, progress: bool = True) -> dict:
    """Writes ``out`` (robomimic layout) from robosuite collection file ``path``. Returns ``{path, demos, frames,
    max_state_error, seconds_per_demo, env_name}``."""
    import h5py
    if os.path.exists(out) and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    if not os.path.exists(path):
        raise ValueError(f"no file at {path}")
    start = time.time()
    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise ValueError(f"{path} has no 'data' group; is it a robosuite collection file (demo.hdf5)?")
        names = demo_names(f["data"])
        if not names:
            raise ValueError(f"{path} holds no data/demo_N groups")
        missing = [n for n in names if "states" not in f["data"][n] or "actions" not in f["data"][n]]
        if missing:
            raise ValueError(f"{missing[0]} has no 'states' or 'actions' (it has {sorted(f['data'][missing[0]])}): "
                             f"the conversion replays the recorded simulator states")
        env_args = env_args_of(f["data"].attrs, images, image_size)
        env = _build(env_args, images)
        episodes, errors = [], []
        for i, name in enumerate(names):
            demo = f["data"][name]
            xml = _model_xml(demo, os.path.dirname(os.path.abspath(path)))
            episode, error = replay_demo(env, xml, np.asarray(demo["states"]), np.asarray(demo["actions"]))
            if error > tolerance:
                raise ValueError(f"{name}: replaying its actions from its states drifts by {error:.3g} (tolerance "
                                 f"{tolerance:g}): this robosuite/MuJoCo is not the simulator that recorded it")
            episode["attrs"] = {"model_file": xml, "source_demo": name}
            episodes.append(episode)
            errors.append(error)
            if progress:
                print(f"\r{name}: {i + 1}/{len(names)} demos replayed, largest state error {max(errors):.2g}",
                      end="", flush=True)
        env.close()
    if progress:
        print()
    write_demos(out, episodes, env_args)
    seconds = time.time() - start
    return dict(path=out, demos=len(episodes), frames=int(sum(len(e["actions"]) for e in episodes)),
                max_state_error=max(errors), seconds_per_demo=seconds / len(episodes), env_name=env_args["env_name"])
