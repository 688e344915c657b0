"""Your own robosuite demonstrations: files written by robosuite's own DataCollectionWrapper and the gathering step
of its collect_human_demonstrations.py, converted to robomimic's layout by replaying their states."""
import json
import os
import shutil

import numpy as np
import pytest

pytest.importorskip("robosuite", reason='robosuite is installed by .ci/run (docs/robomimic.md)')

from robosuite.scripts.collect_human_demonstrations import gather_demonstrations_as_hdf5  # noqa: E402
from robosuite.wrappers import DataCollectionWrapper  # noqa: E402

from cdp_jax.datasets import robomimic_hdf5 as H  # noqa: E402
from cdp_jax.datasets import robosuite_demos as R  # noqa: E402
from cdp_jax.datasets.__main__ import main  # noqa: E402
from cdp_jax.datasets.generators import robomimic_scripted  # noqa: E402
from cdp_jax.envs import robomimic_env  # noqa: E402

# robosuite 1.4's collect_human_demonstrations.py recorded load_controller_config(default_controller="OSC_POSE")
OLD_OSC_POSE = {"type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
                "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "damping_ratio": 1,
                "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_ratio_limits": [0, 10],
                "position_limits": None, "orientation_limits": None, "uncouple_pos_ori": True, "control_delta": True,
                "interpolation": None, "ramp_ratio": 0.2}


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Three scripted Lift episodes recorded by robosuite's DataCollectionWrapper and gathered by robosuite's own
    script (composite controller config, model XML inline), with what the live run saw."""
    folder = tmp_path_factory.mktemp("collection")
    env_args = robomimic_env.default_env_args("lift")
    env = robomimic_env.make_env(env_args)
    env.env = DataCollectionWrapper(env.env, str(folder / "raw"))
    rng, live = np.random.default_rng(0), []
    for seed in range(3):
        episode, success = robomimic_scripted.scripted_episode("lift", env, seed, rng)
        assert success
        live.append(episode)
    env.env.close()
    info = {"env_name": "Lift", "robots": ["Panda"], "controller_configs": env_args["env_kwargs"]["controller_configs"]}
    gather_demonstrations_as_hdf5(str(folder / "raw"), str(folder), json.dumps(info))
    return folder / "demo.hdf5", live


def test_a_robosuite_collection_becomes_the_robomimic_file_of_its_live_run(collection, tmp_path):
    path, live = collection
    out = str(tmp_path / "lift.hdf5")
    report = R.convert(str(path), out, progress=False)
    assert report["demos"] == 3 and report["max_state_error"] == 0.0 and report["env_name"] == "Lift"
    demos = H.read_demos(out)
    # robosuite's gathering lists its episode folders in os.listdir order: match each demo to its live episode
    starts, lengths = demos.episode_starts, demos.episode_lengths
    order = [next(i for i, e in enumerate(live) if len(e["actions"]) == n and np.allclose(
        e["actions"], demos.actions[s:s + n], atol=1e-6)) for s, n in zip(starts, lengths)]
    assert sorted(order) == [0, 1, 2]
    for (s, n), i in zip(zip(starts, lengths), order):
        # observations and rewards, read back from the recorded states, are the ones the live episode saw: the first
        # exactly; later ones within a few thousandths (metres, quaternion units), since robosuite's step reads positions computed before MuJoCo's
        # last integration substep, and a replayed state recomputes them (robomimic's extraction does the same)
        keys = robomimic_env.TASKS["lift"].obs_keys
        seen = np.concatenate([live[i]["obs"][k] for k in keys], 1)
        np.testing.assert_allclose(demos.observations[s], seen[0], atol=1e-6)
        np.testing.assert_allclose(demos.observations[s:s + n], seen, atol=5e-3)
        np.testing.assert_array_equal(demos.observations[s:s + n, -2:], seen[:, -2:])     # gripper qpos: no lag
        np.testing.assert_allclose(demos.rewards[s:s + n], live[i]["rewards"], atol=1e-9)
    assert demos.env_args["env_name"] == "Lift" and demos.env_args["type"] == 1
    env = robomimic_env.make_env(demos.env_args)           # the environment the file records builds
    assert env.reset(seed=0).shape == (19,)


def test_old_style_records_and_numeric_demo_order(collection, tmp_path):
    """robosuite 1.4's form (old controller config, model XML as a file name beside the file) converts to the same
    demos, written as demo_1, demo_2, demo_10 in that order (the file lists demo_10 before demo_2)."""
    import h5py
    path, _ = collection
    old = tmp_path / "old.hdf5"
    shutil.copy(path, old)
    with h5py.File(old, "a") as f:
        data = f["data"]
        data.attrs["env_info"] = json.dumps({"env_name": "Lift", "robots": "Panda", "controller_configs": OLD_OSC_POSE})
        data.move("demo_3", "demo_10")
        for name in ("demo_1", "demo_2", "demo_10"):
            (tmp_path / f"{name}.xml").write_text(data[name].attrs["model_file"])
            data[name].attrs["model_file"] = f"{name}.xml"
        assert list(data.keys()) == ["demo_1", "demo_10", "demo_2"]
    out = str(tmp_path / "old_lift.hdf5")
    assert R.convert(str(old), out, progress=False)["max_state_error"] < 1e-9
    new = str(tmp_path / "new_lift.hdf5")
    R.convert(str(path), new, progress=False)
    with h5py.File(out) as a, h5py.File(new) as b:
        assert [a["data"][k].attrs["source_demo"] for k in ("demo_0", "demo_1", "demo_2")] == ["demo_1", "demo_2",
                                                                                               "demo_10"]
        for k in ("demo_0", "demo_1", "demo_2"):
            np.testing.assert_allclose(a["data"][k]["obs/object"][:], b["data"][k]["obs/object"][:], atol=1e-9)


def test_bad_collections_are_one_line_each(collection, tmp_path):
    import h5py
    path, _ = collection

    def broken(name, edit):
        bad = tmp_path / f"{name}.hdf5"
        shutil.copy(path, bad)
        with h5py.File(bad, "a") as f:
            edit(f["data"])
        return str(bad)

    def robots(data, value):
        data.attrs["env_info"] = json.dumps(dict(json.loads(data.attrs["env_info"]), robots=value))
    cases = {
        "no_states": (lambda d: d["demo_2"].pop("states"), "demo_2 has no 'states'"),
        "robot": (lambda d: robots(d, ["NoSuchRobot"]), "cannot build Lift with robots"),
        "env": (lambda d: d.attrs.modify("env_info", json.dumps(dict(json.loads(d.attrs["env_info"]),
                                                                      env_name="Stack"))), "none of the robomimic"),
        "drift": (lambda d: d["demo_1"]["actions"].write_direct(np.asarray(d["demo_1"]["actions"]) * 0.5),
                  "drifts by"),
        "no_env": (lambda d: d.attrs.pop("env_info"), "neither data.attrs"),
    }
    for name, (edit, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            R.convert(broken(name, edit), str(tmp_path / f"{name}_out.hdf5"), progress=False)
        assert not os.path.exists(tmp_path / f"{name}_out.hdf5")


def test_the_convert_command_line(collection, tmp_path, capsys):
    path, _ = collection
    out = str(tmp_path / "mine.hdf5")
    assert main(["convert-robosuite", str(path), f"--dataset_id={out}"]) == 0
    text = capsys.readouterr().out
    assert "3 demos" in text and "largest state-replay error 0" in text and f"--config.dataset_id={os.path.abspath(out)}" in text
    assert main(["convert-robosuite", str(path), f"--dataset_id={out}"]) == 2
    assert "already exists" in capsys.readouterr().err
