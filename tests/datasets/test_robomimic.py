"""Robomimic: robosuite on the project's mujoco, the HDF5 layout, Diffusion Policy windows, scripted demos."""
import json
import os
import signal

import numpy as np
import pytest

pytest.importorskip("robosuite", reason='robosuite is installed by .ci/run (docs/robomimic.md)')

from cdp_jax.envs import robomimic_env  # noqa: E402
from cdp_jax.datasets import robomimic_hdf5 as H  # noqa: E402
from cdp_jax.datasets import windows as W  # noqa: E402
from cdp_jax.datasets.generators import robomimic_scripted  # noqa: E402
from cdp_jax.io.stopping import Stopped, stop_promptly  # noqa: E402


@pytest.mark.parametrize("task,obs_dim,act_dim", [("lift", 19, 7), ("can", 23, 7), ("square", 23, 7),
                                                  ("transport", 59, 14)])
@pytest.mark.slow
def test_tasks_run_with_the_official_dimensions_and_seeded_resets(task, obs_dim, act_dim):
    args = robomimic_env.default_env_args(task)
    env = robomimic_env.make_env(json.dumps(args))              # as a file records it: JSON text
    assert env.horizon == robomimic_env.TASKS[task].horizon and env.act_dim == act_dim
    first = env.reset(seed=7)
    assert first.shape == (obs_dim,) and np.array_equal(first, env.reset(seed=7))
    assert not np.array_equal(first, env.reset(seed=8))           # placement follows the seed
    obs, reward, success = env.step(np.zeros(act_dim))
    assert obs.shape == (obs_dim,) and reward == 0.0 and success is False
    env.close()


def dp_window_indices(episode_ends, horizon, pad_before, pad_after):
    """Diffusion Policy's ``create_indices`` + ``sample_sequence`` (diffusion_policy/common/sampler.py),
    transcribed on frame numbers: the frames each window holds after edge padding."""
    out = []
    frames = np.arange(episode_ends[-1])
    for i, end_idx in enumerate(episode_ends):
        start_idx = 0 if i == 0 else episode_ends[i - 1]
        length = end_idx - start_idx
        for idx in range(-pad_before, length - horizon + pad_after + 1):
            b0, b1 = max(idx, 0) + start_idx, min(idx + horizon, length) + start_idx
            s0, s1 = b0 - (idx + start_idx), horizon - ((idx + horizon + start_idx) - b1)
            data = np.zeros(horizon, np.int64)
            data[s0:s1] = frames[b0:b1]
            data[:s0], data[s1:] = frames[b0], frames[b1 - 1]
            out.append(data)
    return np.stack(out)


@pytest.mark.parametrize("horizon,obs_steps,action_steps", [(16, 2, 8), (2, 2, 1), (1, 1, 1), (10, 3, 4)])
def test_windows_equal_diffusion_policys_sampler(horizon, obs_steps, action_steps):
    lengths = np.array([17, 40, 23, 16])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ours = W.window_indices(starts, lengths, horizon, obs_steps, action_steps)
    np.testing.assert_array_equal(ours, dp_window_indices(np.cumsum(lengths), horizon, obs_steps - 1,
                                                          action_steps - 1))
    assert len(ours) == sum(lengths - horizon + obs_steps + action_steps - 1)
    with pytest.raises(ValueError, match="shorter than action_steps"):
        W.window_indices(starts, lengths, 4, 2, 8)


def test_window_subsets_use_the_fixed_split_seed():
    a, b = W.window_subset(1000, 0.1), W.window_subset(1000, 0.1)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 100 and len(np.unique(a)) == 100 and np.all(np.diff(a) > 0)
    assert len(W.window_subset(1000, 1.0)) == 1000 and len(W.window_subset(3, 0.01)) == 1
    assert not np.array_equal(a, W.window_subset(1000, 0.1, seed=0))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        W.window_subset(10, 0.0)


@pytest.fixture(scope="module")
def lift_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("robomimic") / "lift.hdf5")
    report = robomimic_scripted.generate("lift", path, num_demos=4, seed=0, progress=False)
    return path, report


@pytest.mark.slow
def test_scripted_lift_demos_are_successful_reproducible_and_in_robomimic_layout(lift_file, tmp_path, monkeypatch,
                                                                                 capsys):
    import h5py
    path, report = lift_file
    assert report["demos"] == 4 and report["success_rate"] >= 0.8
    demos = H.read_demos(path)
    assert demos.num_episodes == 4 and demos.observations.shape == (int(demos.episode_lengths.sum()), 19)
    assert demos.actions.shape[1] == 7 and np.abs(demos.actions).max() <= 1.0
    assert demos.env_args["env_name"] == "Lift" and demos.env_args["env_kwargs"]["control_freq"] == 20
    with h5py.File(path) as f:
        demo = f["data/demo_0"]
        assert sorted(demo["obs"]) == ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
        assert demo.attrs["num_samples"] == len(demo["actions"]) == len(demo["states"])
        assert bool(demo["dones"][-1]) and f["data"].attrs["total"] == demos.observations.shape[0]
    # the recorded start state is the seeded reset: the first frame's observation comes back from the environment
    env = robomimic_env.make_env(demos.env_args)
    with h5py.File(path) as f:
        seed = int(f["data/demo_1"].attrs["reset_seed"])
    np.testing.assert_allclose(env.reset(seed=seed), demos.observations[demos.episode_starts[1]], atol=1e-6)
    # made again, stopped by a SIGTERM after the second demo and rerun: the same file as the uninterrupted run
    again, calls, episode = str(tmp_path / "again.hdf5"), [], robomimic_scripted.scripted_episode

    def stopped_after_two_demos(*args):
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        calls.append(1)
        return episode(*args)
    monkeypatch.setattr(robomimic_scripted, "scripted_episode", stopped_after_two_demos)
    with pytest.raises(Stopped, match="SIGTERM: stopped making it; rerun the same command to continue"):
        with stop_promptly("making it"):
            robomimic_scripted.generate("lift", again, num_demos=4, seed=0, progress=False)
    assert not os.path.exists(again) and sorted(os.listdir(again + ".partial")) == ["demo_0.npz", "demo_1.npz",
                                                                                      "progress.json"]
    monkeypatch.undo()
    robomimic_scripted.generate("lift", again, num_demos=4, seed=0, progress=False)
    assert "continuing from the 2 demos already made" in capsys.readouterr().out
    resumed = H.read_demos(again)
    for field in ("actions", "observations", "rewards", "episode_lengths"):
        np.testing.assert_array_equal(getattr(resumed, field), getattr(demos, field))
    assert not os.path.exists(again + ".partial")
    with pytest.raises(FileExistsError, match="--overwrite"):
        robomimic_scripted.generate("lift", path, num_demos=1, progress=False)


def test_bad_robomimic_input_is_one_clear_line(lift_file, tmp_path):
    path, _ = lift_file
    with pytest.raises(ValueError, match="does not exist"):
        H.read_demos(str(tmp_path / "missing.hdf5"))
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        H.read_demos(str(tmp_path / "text.hdf5"))
    with pytest.raises(ValueError, match=r"no observation key\(s\) \['object_pose'\]; it has \['object'"):
        H.read_demos(path, obs_keys=("object_pose", "robot0_eef_pos"))
    with pytest.raises(ValueError, match="image keys \\['agentview_image'\\] were asked of a low-dim file"):
        H.read_demos(path, obs_keys=("agentview_image",))
    with pytest.raises(ValueError, match="unknown robomimic task 'stack'"):
        robomimic_env.task_of("stack")
    with pytest.raises(ValueError, match="no scripted demonstrator.*transport"):
        robomimic_scripted.generate("transport", str(tmp_path / "tr.hdf5"), 1, progress=False)


def test_a_demo_filter_reads_the_demos_its_mask_lists(lift_file, tmp_path):
    """robomimic's hdf5_filter_key: ``mask/<key>`` lists demo names (bytes, any order); only those are read."""
    import shutil

    import h5py

    from cdp_jax.train.config import base_config, validate
    path = str(tmp_path / "masked.hdf5")
    shutil.copy(lift_file[0], path)
    with h5py.File(path, "a") as f:
        f["mask/train"] = np.array([b"demo_3", b"demo_0", b"demo_2"])
        f["mask/valid"] = np.array([b"demo_1"])
        f["mask/broken"] = np.array([b"demo_0", b"demo_9"])
    whole = H.read_demos(path)
    train = H.read_demos(path, demo_filter="train")
    kept = [0, 2, 3]
    np.testing.assert_array_equal(train.episode_lengths, whole.episode_lengths[kept])
    np.testing.assert_array_equal(train.actions, np.concatenate(
        [whole.actions[s:s + n] for s, n in zip(whole.episode_starts[kept], whole.episode_lengths[kept])]))
    data, info = H.load_transitions(path, obs_steps=2, demo_filter="valid")
    assert info.total_steps == whole.episode_lengths[1] and info.total_episodes == 1
    with pytest.raises(ValueError, match=r"no demo filter 'train20'.*it has \['broken', 'train', 'valid'\]"):
        H.read_demos(path, demo_filter="train20")
    with pytest.raises(ValueError, match=r"mask/broken lists demos the file lacks \(\['demo_9'\]\)"):
        H.read_demos(path, demo_filter="broken")
    with pytest.raises(ValueError, match="has no demo filter 'train'.*it has none"):
        H.read_demos(lift_file[0], demo_filter="train")
    cfg = base_config()
    cfg.demo_filter = "train"
    with pytest.raises(ValueError, match="demo_filter .* applies to robomimic files only"):
        validate(cfg)


@pytest.mark.slow
def test_scripted_square_demos_put_the_nut_on_the_peg(tmp_path):
    report = robomimic_scripted.generate("square", str(tmp_path / "square.hdf5"), num_demos=3, seed=0,
                                         progress=False)
    assert report["demos"] == 3 and report["success_rate"] >= 0.5
    demos = H.read_demos(report["path"])
    assert demos.env_args["env_name"] == "NutAssemblySquare" and demos.observations.shape[1] == 23
    ends = demos.episode_starts + demos.episode_lengths - 1
    assert (demos.rewards[ends] > 0).all()                         # each demo ends at its first successful step
    env = robomimic_env.make_env(demos.env_args)
    peg = env.env.sim.data.body_xpos[env.env.sim.model.body_name2id("peg1")]
    nut = demos.observations[ends, 7:10]        # robosuite 1.5's object state: nut to gripper (7), nut position
    assert np.abs(nut[:, :2] - peg[:2]).max() < 0.03               # robosuite's on-peg test
    assert np.abs(demos.actions[:, 5]).max() > 0.2                 # the demonstrator turns the gripper (yaw)


def test_missing_robosuite_names_the_install_command(monkeypatch):
    from cdp_jax.envs import robosuite_compat
    monkeypatch.setattr(robosuite_compat, "_PATCHED", False)
    monkeypatch.setitem(__import__("sys").modules, "robosuite", None)          # as if it were not installed
    with pytest.raises(ValueError, match=r"robosuite is not installed.*pip install --no-deps robosuite==1.5.2"):
        robomimic_env.make_env({"env_name": "Lift", "env_kwargs": {}})


@pytest.mark.slow
def test_generate_cli_writes_robomimic_files(tmp_path, capsys):
    from cdp_jax.datasets.__main__ import main
    out = str(tmp_path / "can.hdf5")
    assert main(["generate", "robomimic-can", "--steps=2", f"--dataset_id={out}"]) == 0
    assert H.read_demos(out).num_episodes == 2 and "controller success" in capsys.readouterr().out
    assert main(["generate", "robomimic-can", "--steps=2", f"--dataset_id={out}"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.slow
def test_transitions_carry_observation_history_and_action_chunks(lift_file):
    path, _ = lift_file
    demos = H.read_demos(path)
    data, info = H.load_transitions(path, obs_steps=2, horizon=4, action_steps=2)
    n = demos.observations.shape[0]
    assert data.observations.shape == (n, 38) and data.actions.shape == (n, 28) and info.act_dim == 28
    s, length = demos.episode_starts[1], demos.episode_lengths[1]
    obs, act = np.asarray(data.observations), np.asarray(data.actions)
    np.testing.assert_array_equal(obs[s], np.concatenate([demos.observations[s]] * 2))        # padded history
    np.testing.assert_array_equal(obs[s + 3], demos.observations[s + 2:s + 4].reshape(-1))
    np.testing.assert_array_equal(act[s + 1], demos.actions[s + 1:s + 5].reshape(-1))
    last = s + length - 1
    np.testing.assert_array_equal(act[last], np.tile(demos.actions[last], 4))                  # repeated at the end
    assert np.asarray(data.episode_ends).sum() == demos.num_episodes
    env = info.make_env()
    first, _ = env.reset(seed=int(5))
    assert first.shape == (38,) and np.array_equal(first[:19], first[19:])
    obs2, reward, terminated, truncated, step_info = env.step(np.zeros(28))
    assert env.unwrapped.steps == 2 and not terminated and step_info["success"] == 0.0     # action_steps executed
    assert obs2.shape == (38,) and reward == 0.0 and not truncated and not terminated
    for _ in range(199):                                    # the full horizon (400 steps), whatever happens
        *_, terminated, truncated, _ = env.step(np.zeros(28))
    assert truncated and not terminated and env.unwrapped.steps == 400
    env.close()


@pytest.mark.slow
def test_a_dbc_sweep_trains_and_evaluates_on_a_robomimic_file(lift_file, tmp_path):
    from cdp_jax.train.config import base_config
    from cdp_jax.train.sweep import Sweep
    path, _ = lift_file
    cfg = base_config("dbc")
    cfg.dataset_id, cfg.generate = path, ""
    cfg.agent_config.diffusion.update(network="dql", hidden=32, diffusion_steps=10, sampling_steps=3)
    cfg.sequence = dict(obs_steps=2, horizon=4, action_steps=4)
    cfg.subset_seed, cfg.obs_normalization = 42, "minmax"
    cfg.seeds, cfg.data_fractions, cfg.gammas = 1, (1.0, 0.5), (0.0, 0.1)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes, cfg.batch_size = 10, 10, 1, 16
    cfg.eval_max_steps = 40                                 # ten chunks of four actions, not Lift's 400 steps
    cfg.consistency_states, cfg.consistency_samples = 4, 2
    sweep = Sweep(cfg, str(tmp_path / "sweep"), progress=False)
    rows = sweep.run()
    assert len(rows) == 4 and all(r["success"] in (0.0, 1.0) for r in rows)
    assert all(np.isnan(r["normalized_score"]) and np.isfinite(r["return"]) for r in rows)
    summary = (tmp_path / "sweep" / "summary.md").read_text()       # Table 2's two metrics, not an empty score
    assert "# Sweep summary: success" in summary and "# Sweep summary: return" in summary
    row = next(line for line in summary.splitlines() if "| dbc | 0.5 | 0.1 |" in line)
    assert f"{np.mean([r['success'] for r in rows if (r['data_fraction'], r['gamma']) == (0.5, 0.1)]):.1f} ±" in row
    # the two fractions' subsets are the same for every seed (fixed split seed), not the member seed
    from cdp_jax.datasets.subsets import subset_indices
    idx = subset_indices(sweep.info.total_steps, 0.5, 42)
    member = next(i for i, m in enumerate(sweep.grid.members) if m["data_fraction"] == 0.5)
    np.testing.assert_array_equal(np.asarray(sweep.grid.subsets.idx[member])[:len(idx)], idx)
    # the tools that read a finished workdir load its dataset as the sweep did (windows, history, env_args)
    from cdp_jax.analysis.diagnostics import diagnose_sweep
    from cdp_jax.analysis.selection import select_gamma
    workdir = str(tmp_path / "sweep")
    assert {r["metric"] for r in diagnose_sweep(workdir, num_states=4, num_levels=2, num_noises=2)} >= {"lambda_max"}
    chosen = select_gamma(workdir, episodes=1)                # robomimic has no reference scores: average return
    assert [r["data_fraction"] for r in chosen if r["chosen"]] == [0.5, 1.0]
    final = {(r["data_fraction"], r["gamma"]): r["return"] for r in rows}      # one seed: the means are its values
    for r in chosen:                                        # returns, not the NaN normalised score
        assert np.isfinite(r["holdout_score"]) and r["reported_score"] == pytest.approx(final[(r["data_fraction"], 0.1)])
        assert r["gamma0_score"] == pytest.approx(final[(r["data_fraction"], 0.0)])
    assert "average return (no reference scores)" in (tmp_path / "sweep" / "gamma_selection.md").read_text()
    from cdp_jax.train.policy import members_table
    assert "| member | seed | data fraction | γ | last step | success | return |" in members_table(workdir)
    bad = base_config()
    bad.sequence = dict(obs_steps=2, horizon=2, action_steps=1)
    from cdp_jax.train.config import validate
    with pytest.raises(ValueError, match="robomimic files"):
        validate(bad)
    bad.dataset_id, bad.sequence = path, dict(obs_steps=1, horizon=2, action_steps=4)
    with pytest.raises(ValueError, match="shorter than action_steps"):          # the same check as the windows'
        validate(bad)
    # a member's episodes rendered to a GIF, as a user runs it: a fresh process, where XLA's first compilation and
    # the first OpenGL context meet (llvmpipe draws garbage if the context comes first). Last: it needs OpenGL.
    import subprocess
    import sys

    from PIL import Image

    from cdp_jax.envs.robosuite_compat import RenderingUnavailable
    try:
        robomimic_env.check_environments(cameras=True)
    except RenderingUnavailable as err:
        pytest.skip(str(err))
    gif = str(tmp_path / "member3.gif")
    done = subprocess.run([sys.executable, "-m", "experiments.rollout", f"--workdir={workdir}", "--member=3",
                           "--episodes=2", "--size=48", f"--out={gif}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "member 3 (seed 0, data fraction 0.5, γ 0.1) at step 10: returns [" in done.stdout
    with Image.open(gif) as image:                          # consecutive equal frames are merged
        frames = []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB"), np.float32))
    assert f"({2 * (1 + 40)} frames)" in done.stdout          # a frame per control step, inside the chunks too
    assert image.size == (48, 48) and 2 <= len(frames) <= 2 * (1 + 40)
    # a real scene: the table fills the lower half, and no frame jumps (llvmpipe's garbage changes every pixel)
    assert all(f[24:].mean() > 150 for f in frames)
    assert max(np.abs(a - b).mean() for a, b in zip(frames, frames[1:])) < 40


def test_every_robomimic_config_validates():
    from cdp_jax.train.config import validate
    from experiments.configs.robomimic import BACKBONES, IMAGE_TASKS, TASKS, get_config
    for task in TASKS + IMAGE_TASKS:
        for backbone in BACKBONES:
            if task in IMAGE_TASKS and backbone == "bc_gmm":
                with pytest.raises(ValueError, match="low-dim observations only"):
                    get_config(f"{task},{backbone}")
                continue
            validate(get_config(f"{task},{backbone}"))      # the Pearce MLP: history 2, chunk 1 (no window)


@pytest.mark.slow
@pytest.mark.parametrize("images", [False, True], ids=["low_dim", "four_cameras"])
def test_a_two_arm_transport_file_loads_trains_and_evaluates(tmp_path, images):
    """Transport has no scripted demonstrator (the real PH file only), so its path is checked on a file in its
    layout: random actions of both arms, and with images robomimic's four Transport cameras at 32 x 32. Low-dim:
    the ``transport`` config trains and evaluates on it, every member's environment stepped in lockstep with
    14-dimensional actions. Images: the loader's flat layout (both arms' proprioception, four cameras, history 2)
    and an environment built from the file's env_args reproduces the file's first frame, pixels included (training
    on cameras is tested on Lift in test_images.py)."""
    import jax.numpy as jnp

    from cdp_jax.train.sweep import Sweep
    from experiments.configs.robomimic import IMAGE_OBS_KEYS, get_config
    keys = IMAGE_OBS_KEYS["transport-image"] if images else robomimic_env.TASKS["transport"].obs_keys
    args = robomimic_env.default_env_args("transport")
    if images:
        from cdp_jax.envs.robosuite_compat import RenderingUnavailable
        try:
            robomimic_env.check_environments(cameras=True)
        except RenderingUnavailable as err:
            pytest.skip(str(err))
        cameras = [k.removesuffix("_image") for k in robomimic_env.image_keys(keys)]
        args["env_kwargs"].update(camera_heights=32, camera_widths=32, camera_names=cameras)
    env = robomimic_env.make_env(args, keys)
    rng = np.random.default_rng(0)
    episodes = []
    for seed in range(2):
        env.reset(seed)
        ep = {"obs": {k: [] for k in env.obs_keys}, "actions": [], "rewards": [], "states": []}
        for _ in range(4 if images else 12):            # every step renders four cameras (70 ms each on llvmpipe)
            for k, v in env.robomimic_obs().items():
                ep["obs"][k].append(v)
            ep["states"].append(env.env.sim.get_state().flatten())
            action = rng.uniform(-1.0, 1.0, env.act_dim)
            _, reward, _ = env.step(action)
            ep["actions"].append(action)
            ep["rewards"].append(reward)
        episodes.append({"obs": {k: np.stack(v) for k, v in ep["obs"].items()}, "actions": np.stack(ep["actions"]),
                         "rewards": np.asarray(ep["rewards"]), "states": np.stack(ep["states"])})
    env.close()
    path = H.write_demos(str(tmp_path / "transport.hdf5"), episodes, args)
    if images:
        data, info = H.load_transitions(path, obs_steps=2, obs_keys=keys)
        frame = 18 + 4 * 32 * 32 * 3            # two arms x (eef pos 3, quat 4, gripper 2), then four cameras
        assert info.act_dim == 14 and info.obs_dim == 2 * frame and info.image_layout["cameras"] == keys[-4:]
        from cdp_jax.nn.image_encoder import ImageLayout
        layout = ImageLayout(**dict(info.image_layout, crop=28))
        low, pixels = (np.asarray(x)[0, 1] for x in layout.split(data.rows(jnp.arange(1)).observations))
        fresh = robomimic_env.make_env(H.read_demos(path, keys).env_args, keys)      # the file's own env_args
        np.testing.assert_allclose(np.concatenate([low, pixels.reshape(-1)]), fresh.reset(0), atol=1e-6)
        assert pixels.std() > 1.0                                                # rendered, not blank
        fresh.close()
        return
    cfg = get_config("transport")
    cfg.dataset_id = path
    cfg.seeds, cfg.data_fractions, cfg.gammas = 2, (1.0,), (0.1,)     # one compiled program (gamma 0's: elsewhere)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes, cfg.eval_max_steps, cfg.batch_size = 2, 2, 1, 3, 8
    cfg.consistency_states, cfg.consistency_samples = 4, 2
    cfg.agent_config.diffusion.update(hidden=32, diffusion_steps=10, sampling_steps=3)
    sweep = Sweep(cfg, str(tmp_path / "sweep"), progress=False)
    rows = sweep.run()
    assert sweep.info.act_dim == 14 and sweep.info.obs_dim == 2 * 59 and len(rows) == 2
    assert all(r["success"] == 0.0 and np.isfinite(r["return"]) for r in rows)


@pytest.mark.slow
def test_a_sigterm_stops_a_generation_within_seconds_keeping_its_demos(tmp_path):
    import subprocess
    import sys
    import time
    out = str(tmp_path / "lift.hdf5")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-m", "cdp_jax.datasets", "generate", "robomimic-lift", "--steps=50",
                             f"--dataset_id={out}"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not os.path.exists(out + ".partial/progress.json") and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.time() - sent < 10, err[-2000:]
    assert err.strip().splitlines()[-1].startswith("SIGTERM: stopped `generate robomimic-lift`; rerun the same "
                                                   "command to continue") and "Traceback" not in err
    assert not os.path.exists(out) and os.path.exists(out + ".partial/demo_0.npz")
