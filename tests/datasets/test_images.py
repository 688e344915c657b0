"""Image observations: the flat layout, crops, the ResNet-18 (GroupNorm) encoder and a denoiser conditioned on it."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cdp_jax.nn.image_encoder import ImageLayout, ImageObsEncoder, ResNet18GN, crop, crop_offsets

LAYOUT = ImageLayout(obs_steps=2, low_dim=3, cameras=("agentview_image", "robot0_eye_in_hand_image"), height=32,
                     width=32, crop=28)


def flat_obs(rng, batch, layout=LAYOUT):
    """``(obs [B, size] float32, low [B, T, low], frames uint8 [B, T, C, H, W, 3])``."""
    low = rng.normal(size=(batch, layout.obs_steps, layout.low_dim)).astype(np.float32)
    frames = rng.integers(0, 256, (batch, layout.obs_steps, len(layout.cameras), layout.height, layout.width, 3),
                          dtype=np.uint8)
    obs = np.concatenate([low.reshape(batch, -1), frames.reshape(batch, -1).astype(np.float32)], axis=1)
    return obs, low, frames


def test_layout_splits_a_flat_observation_back_into_its_uint8_frames():
    obs, low, frames = flat_obs(np.random.default_rng(0), 3)
    assert obs.shape == (3, LAYOUT.size) == (3, 2 * (3 + 2 * 32 * 32 * 3))
    got_low, got_pix = LAYOUT.split(jnp.asarray(obs))
    np.testing.assert_array_equal(np.asarray(got_low), low)
    np.testing.assert_array_equal(np.asarray(got_pix).astype(np.uint8), frames)     # exact round trip
    with pytest.raises(ValueError, match="has 12294 numbers, got 5"):
        LAYOUT.split(jnp.zeros((1, 5)))


def test_crops_random_in_training_centre_in_evaluation_same_across_history():
    _, _, frames = flat_obs(np.random.default_rng(1), 64)
    pix = jnp.asarray(frames)
    centre = crop_offsets(None, 64, LAYOUT, train=False)
    np.testing.assert_array_equal(np.asarray(centre), 2)
    np.testing.assert_array_equal(np.asarray(crop(pix, centre, 28)), frames[:, :, :, 2:30, 2:30])
    offsets = np.asarray(crop_offsets(jax.random.PRNGKey(0), 64, LAYOUT, train=True))
    assert offsets.min() == 0 and offsets.max() == 4 and len({tuple(o) for o in offsets.reshape(-1, 2)}) > 10
    out = np.asarray(crop(pix, jnp.asarray(offsets), 28))
    chex.assert_shape(out, (64, 2, 2, 28, 28, 3))
    for b in (0, 17, 63):
        for c in range(2):
            i, j = offsets[b, c]
            for t in range(2):                       # one corner for the whole history of a sample and camera
                np.testing.assert_array_equal(out[b, t, c], frames[b, t, c, i:i + 28, j:j + 28])


@pytest.mark.slow
def test_resnet18_has_torchvision_resnet18_parameter_count_and_group_norm_statistics():
    net = ResNet18GN()
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 76, 76, 3))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), x)     # one compilation, not one per operation
    # torchvision resnet18: 11,689,512 parameters, of which fc holds 512 * 1000 + 1000; GroupNorm's affine
    # parameters replace BatchNorm's one for one.
    assert sum(p.size for p in jax.tree.leaves(params)) == 11_689_512 - 513_000
    out, state = jax.jit(lambda p, x: net.apply(p, x, capture_intermediates=True, mutable=["intermediates"]))(
        params, x)
    chex.assert_shape(out, (2, 512))
    first_norm = np.asarray(state["intermediates"]["GroupNorm_0"]["__call__"][0])      # [2, 38, 38, 64]
    groups = first_norm.reshape(2, 38 * 38, 4, 16)                                      # 64 channels / 16 = 4
    np.testing.assert_allclose(groups.mean(axis=(1, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(groups.var(axis=(1, 3)), 1.0, rtol=2e-3)


@pytest.mark.slow
def test_encoder_conditioning_shape_and_crop_modes():
    enc = ImageObsEncoder(LAYOUT, emb_dim=16)
    obs, _, _ = flat_obs(np.random.default_rng(2), 4)
    params = jax.jit(enc.init)(jax.random.PRNGKey(0), jnp.asarray(obs))
    assert set(params["params"]) == {"resnet_agentview_image", "resnet_robot0_eye_in_hand_image", "Dense_0"}
    apply = jax.jit(enc.apply)
    evals = [apply(params, jnp.asarray(obs)) for _ in range(2)]
    chex.assert_shape(evals[0], (4, 2 * 16))
    np.testing.assert_array_equal(evals[0], evals[1])                     # centre crop: deterministic
    train = jax.jit(lambda p, o, k: enc.apply(p, o, True, rngs={"crop": k}))
    trains = [train(params, jnp.asarray(obs), jax.random.PRNGKey(k)) for k in (1, 2)]
    assert not np.allclose(trains[0], trains[1])


def test_image_agents_hold_the_encoder_in_each_members_parameters():
    from cdp_jax.agents import agent_class, default_agent_config
    from cdp_jax.agents.base import LossWeights
    cfg = default_agent_config("dbc")
    d = cfg.diffusion
    d.network, d.hidden = "pearce", 32
    d.image.update(cameras=LAYOUT.cameras, height=32, width=32, crop=28, low_dim=3, obs_steps=2, emb_dim=16)
    create = lambda s: agent_class("dbc").create(cfg, LossWeights(gamma=0.1), jax.random.PRNGKey(s), LAYOUT.size, 7)
    shapes = jax.eval_shape(jax.vmap(create), jnp.arange(3))          # no compile: shapes only
    params = shapes.params["params"]
    assert set(params) == {"encoder", "backbone"}
    assert set(params["encoder"]) == {"resnet_agentview_image", "resnet_robot0_eye_in_hand_image", "Dense_0"}
    chex.assert_shape(params["encoder"]["Dense_0"]["kernel"], (3, 2 * (3 + 2 * 512), 2 * 16))   # per member
    assert jax.tree.structure(shapes.actor_ema) == jax.tree.structure(shapes.params)
    with pytest.raises(ValueError, match="needs observations of 12294 numbers, the data has 10"):
        agent_class("dbc").create(cfg, LossWeights(), jax.random.PRNGKey(0), 10, 7)
    d.image.crop = 40
    with pytest.raises(ValueError, match=r"crop 40 must be in \[1, min\(height, width\) = 32\]"):
        agent_class("dbc").create(cfg, LossWeights(), jax.random.PRNGKey(0), LAYOUT.size, 7)
    from cdp_jax.train.config import agent_config
    from experiments.configs.robomimic import get_config
    sweep_cfg = get_config("lift,bc_gmm")
    with pytest.raises(ValueError, match="agent 'bc_gmm' cannot take image observations"):
        agent_config(sweep_cfg, dict(obs_steps=2, low_dim=9, cameras=("agentview_image",), height=84, width=84))


@pytest.fixture(scope="module")
def lift_images(tmp_path_factory):
    """Two scripted Lift demos with both cameras at 32 x 32 (rendered offscreen through EGL; a machine without
    an OpenGL backend skips the rendering tests, naming the fix; `.ci/run` installs EGL where it is missing)."""
    from cdp_jax.datasets.generators import robomimic_scripted
    from cdp_jax.envs.robomimic_env import check_environments
    from cdp_jax.envs.robosuite_compat import RenderingUnavailable
    try:
        check_environments(cameras=True)
    except RenderingUnavailable as err:
        pytest.skip(str(err))
    path = str(tmp_path_factory.mktemp("robomimic") / "image.hdf5")
    robomimic_scripted.generate("lift", path, num_demos=2, seed=0, progress=False, image_size=32)
    return path


@pytest.mark.slow
def test_image_demos_load_as_uint8_frames_with_window_indices(lift_images):
    from cdp_jax.datasets.robomimic_hdf5 import load_transitions, read_demos
    from experiments.configs.robomimic import IMAGE_OBS_KEYS
    keys = IMAGE_OBS_KEYS["lift-image"]
    demos = read_demos(lift_images, keys)
    assert demos.cameras == ("agentview_image", "robot0_eye_in_hand_image") and demos.observations.shape[1] == 9
    assert demos.frames.dtype == np.uint8 and demos.frames.shape[1:] == (2, 32, 32, 3)
    data, info = load_transitions(lift_images, obs_steps=2, obs_keys=keys)
    assert data.frames.dtype == jnp.uint8 and data.frames.shape == (len(demos.frames), 2 * 32 * 32 * 3)
    assert info.obs_dim == LAYOUT.size + 2 * 6 and info.image_layout["low_dim"] == 9 and len(info.obs_mean) == 18
    batch = data.rows(jnp.asarray([0, 5]))
    layout = ImageLayout(2, 9, demos.cameras, 32, 32, 28)
    low, pix = layout.split(batch.observations)
    # row 5 of episode 0: frames 4 and 5; row 0: the first frame twice (Diffusion Policy's padding)
    np.testing.assert_array_equal(np.asarray(pix[1]).astype(np.uint8), demos.frames[[4, 5]])
    np.testing.assert_array_equal(np.asarray(pix[0]).astype(np.uint8), demos.frames[[0, 0]])
    np.testing.assert_array_equal(np.asarray(low[1]), demos.observations[[4, 5]])
    with pytest.raises(ValueError, match="has 32x32 frames, expected 84x84"):
        read_demos(lift_images, keys, image_size=(84, 84))
    with pytest.raises(ValueError, match=r"no observation key\(s\) \['shouldercamera0_image'\]"):
        read_demos(lift_images, ("robot0_eef_pos", "shouldercamera0_image"))


@pytest.mark.slow
def test_an_image_sweep_trains_cdp_and_evaluates_members_in_lockstep(lift_images, tmp_path):
    from cdp_jax.train.sweep import Sweep
    from experiments.configs.robomimic import get_config
    cfg = get_config("lift-image")
    cfg.dataset_id, cfg.generate = lift_images, ""
    cfg.agent_config.diffusion.update(hidden=32, diffusion_steps=10, sampling_steps=3)
    cfg.agent_config.diffusion.image.update(crop=28, emb_dim=16)
    cfg.obs_keys = cfg.obs_keys[:-1]                     # one camera (agentview): half the encoder to compile
    cfg.seeds, cfg.data_fractions, cfg.gammas = 2, (1.0,), (0.1,)
    cfg.num_steps = cfg.eval_every = 2
    cfg.batch_size, cfg.eval_episodes, cfg.eval_max_steps = 8, 1, 6
    cfg.consistency_states, cfg.consistency_samples = 4, 2
    sweep = Sweep(cfg, str(tmp_path / "sweep"), progress=False)
    rows = sweep.run()
    assert len(rows) == 2 and all(r["success"] in (0.0, 1.0) and np.isfinite(r["return"]) for r in rows)
    assert sweep.info.image_layout["cameras"] == ("agentview_image",) and sweep.info.obs_dim == 2 * (9 + 32 * 32 * 3)
    assert all(np.isfinite(r["lambda_max"]) for r in rows)        # the diagnostics ran through the encoder
    from cdp_jax.analysis.diagnostics import diagnose_sweep                # and experiments.diagnose, on the frames' pixels
    measured = diagnose_sweep(str(tmp_path / "sweep"), num_states=2, num_noises=2, num_levels=2, neighbours=2)
    assert measured and all(np.isfinite(r["value"]) for r in measured)
    # a member as a frozen policy on the environment's own observation (history of pixels), and its jax.export file
    import jax

    from cdp_jax.exported import load_exported
    from cdp_jax.train.policy import load_policy
    policy = load_policy(str(tmp_path / "sweep"), member=1)
    env = sweep.info.make_env()
    obs, _ = env.reset(seed=3)
    env.close()
    action = np.asarray(policy.act(obs[None], jax.random.PRNGKey(5)))
    assert action.shape == (1, sweep.info.act_dim) and np.all(np.abs(action) <= 1.0)
    exported = load_exported(policy.export(str(tmp_path / "image_policy.cdpx")))
    np.testing.assert_allclose(exported(obs[None], seed=5), action, atol=1e-5)


@pytest.mark.slow
def test_an_unusable_gl_backend_is_one_line_naming_mujoco_gl(lift_images, tmp_path):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, MUJOCO_GL="bogus")
    proc = subprocess.run([sys.executable, "-m", "experiments.sweep", "--config=experiments/configs/robomimic.py:"
                           "lift-image", f"--workdir={tmp_path / 'w'}", f"--config.dataset_id={lift_images}",
                           "--config.generate="], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "MUJOCO_GL='bogus'" in line and "MUJOCO_GL=egl" in line
