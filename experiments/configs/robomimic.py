"""Robomimic imitation (the paper's Table 2, low-dim): DBC (γ = 0) against CDP-IL (γ = 0.1) with the official
recipe (Pearce MLP conditioned on 2 observation frames, 50 DPM-Solver++ steps, L_c at all t, lr 1e-3, batch 512,
MinMax observations, subsets over windows with the fixed split seed 42), evaluated in robosuite built from the
file's own env_args: success rate and average reward over 10 episodes, the task's horizon.

    --config=experiments/configs/robomimic.py:lift     (lift, can, square: scripted demos generated on first
                                                         use; transport: the real PH file, see below)
    --config=experiments/configs/robomimic.py:lift,unet   (backbone: pearce (default) = DBC / CDP-IL, unet =
                                                         DP-Unet / CDP-Unet, dit = DP-DiT / CDP-DiT, bc_gmm;
                                                         the chunk backbones' CDP γ is 100, see CDP_GAMMA)
    --config=experiments/configs/robomimic.py:lift-image[,unet]   (the "-H" rows: two 84 x 84 cameras and
                                                         proprioception; lift-image, can-image generate scripted
                                                         demos with both cameras, transport-image needs the PH file)

Chunked backbones follow Diffusion Policy's low-dim recipe: observation history 2, chunk 16, 8 actions executed,
AdamW lr 1e-4, batch 256, and the contraction loss from one random probe per sample (the exact Jacobian of a
16 x 7 chunk would take 112 JVPs). One probe is enough: on a Lift-shaped UNet its per-sample estimate has a
relative standard deviation of 0.15 (measured; about sqrt(2/d) for d = 112), 1% once averaged over the batch of
256, far below the spread of the exact values across samples; each probe costs about two DP-Unet updates
(CDP-Unet / DP-Unet on this CPU at batch 256: 3.1x with 1 probe, 10.4x with 4, 1.11-1.17x on a 1/16 sub-batch;
`benchmarks/speed/contraction_cost.py --parts=chunks`, `benchmarks/speed/reduced_contraction_cost.py`). A sub-batch at every
update (`contraction.batch_fraction`) kept the whole batch's effect (16 rows, over 18 seeds: reward 228 against 227,
success 0.950 against 0.972, p 0.21; docs/notes/2026-12-07-lazy-contraction.md), so the chunk backbones (CDP-Unet,
CDP-DiT, which the official code has no working path for) take 16 rows per update (`contraction.rows=16`); the
Pearce MLP recipe takes the official whole batch.

robomimic's PH file: --config.dataset_id=robomimic/lift/ph/low_dim_v15.hdf5 --config.generate='' (downloaded on
first use where Hugging Face answers, or beforehand with `python -m cdp_jax.datasets download robomimic-lift`; any
other path to a robomimic file works too). Transport's configs name its PH file this way. --config.demo_filter=train
(or another of the file's mask/ keys, robomimic's hdf5_filter_key) trains on that list of demos only.
"""
from cdp_jax.agents import default_agent_config
from cdp_jax.train.config import base_config
from experiments.configs.pointmaze import official_il_recipe

TASKS = ("lift", "can", "square", "transport")
IMAGE_TASKS = ("lift-image", "can-image", "transport-image")
GENERATED = ("lift", "can", "square")
BACKBONES = ("pearce", "unet", "dit", "bc_gmm")
# The CDP member's γ per backbone. The official loss is mean((J_sym + βI)²) over the d x d entries, i.e.
# ||J_sym + βI||²_F / d², about the mean squared eigenvalue over d: at one γ it weighs a 16 x 7 chunk (d = 112) about
# 16x less than one 7-dim action. Measured on a reduced UNet (model_dim 64, batch 64, generated Lift, 10% data,
# 2000 updates; benchmarks/results/robomimic_lift_unet_gamma_cpu/): γ 0 / 1 / 10 / 100 took λmax(J_sym) at low
# noise 0.90 / 0.87 / 0.73 / 0.35 and the average reward 273 / 278 / 292 / 337 (2 seeds, monotone in both); γ 0
# vs 100 over 18 seeds: 191 vs 227 at 10% data (15 of 18 seeds ahead, p = 0.010), 215 vs 243 at 100% (13 of 18,
# p = 0.037); success 0.91 vs 0.97 and 0.97 vs 1.00 (robomimic_lift_unet_g100_18seeds_cpu/paired.md); γ 0.1
# changed nothing (robomimic_lift_unet_cpu/). 100 is the top of the paper's γ grid {0.001, ..., 100}. DiT: the
# same normalisation argument; a reduced DiT (d_model 96, 6 seeds, 10%) measured no effect of γ 100 on reward
# (+0.4 ± 75) although λmax fell 0.65 -> 0.19 (robomimic_lift_dit_g100_6seeds_cpu/).
CDP_GAMMA = {"pearce": 0.1, "unet": 100.0, "dit": 100.0}


def gammas(backbone: str) -> tuple:
    """A backbone's γ grid: 0 (DBC, DP-Unet, DP-DiT, BC-GMM) and, but for BC-GMM, its CDP γ."""
    return (0.0,) if backbone == "bc_gmm" else (0.0, CDP_GAMMA[backbone])


_PROPRIO = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
# robomimic's image observations: proprioception and the cameras (no object state)
IMAGE_OBS_KEYS = {
    "lift-image": _PROPRIO + ("agentview_image", "robot0_eye_in_hand_image"),
    "can-image": _PROPRIO + ("agentview_image", "robot0_eye_in_hand_image"),
    "transport-image": _PROPRIO + tuple(k.replace("robot0", "robot1") for k in _PROPRIO) + (
        "shouldercamera0_image", "shouldercamera1_image", "robot0_eye_in_hand_image", "robot1_eye_in_hand_image"),
}


def get_config(arg: str = "lift"):
    task, _, backbone = arg.partition(",")
    backbone = backbone or "pearce"
    if task not in TASKS + IMAGE_TASKS:
        raise ValueError(f"unknown robomimic task {task!r}; use one of {TASKS + IMAGE_TASKS}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown robomimic backbone {backbone!r}; use one of {BACKBONES}")
    cfg = official_il_recipe(base_config())
    base, images = task.removesuffix("-image"), task in IMAGE_TASKS
    kind = "image" if images else "low_dim"
    if base in GENERATED:
        cfg.dataset_id, cfg.generate = f"robomimic/{base}/scripted/{kind}.hdf5", f"robomimic-{base}"
    else:
        cfg.dataset_id, cfg.generate = f"robomimic/{base}/ph/{kind}_v15.hdf5", ""
    cfg.sequence = dict(obs_steps=2, horizon=1, action_steps=1)
    cfg.subset_seed, cfg.subset_kind = 42, "transitions"
    cfg.seeds, cfg.data_fractions, cfg.gammas = 3, (1.0, 0.1), gammas(backbone)
    cfg.num_steps, cfg.eval_every, cfg.eval_episodes = 100_000, 10_000, 10
    # robosuite's physics, not the policy, bounds the lockstep evaluation: one worker process per core stepped 9
    # Lift members x 2 episodes at 108-115 env-steps/s against 80-83 in this process (2-core Xeon, Pearce policy;
    # benchmarks/results/robomimic_eval_workers_cpu.json), and 9 members x 10 episodes in 374 s against 451 s. Results
    # do not depend on it. Where the workers' own memory would add a wave, fewer are used (docs/sweeps.md, eval_workers).
    cfg.eval_workers = 1 if images else 0
    if images:
        # The official image recipe: ResNet-18 (GroupNorm) per camera, crops 84 -> 76, emb 256, batch 64,
        # 20 evaluation episodes; Pearce MLP emb 256 / hidden 512 (or DiT: d_model 320, 10 heads, depth 2).
        cfg.obs_keys, cfg.generate_image_size = IMAGE_OBS_KEYS[task], 84
        cfg.batch_size, cfg.eval_episodes = 64, 20
        cfg.agent_config.diffusion.image.update(crop=76, emb_dim=256)
        if backbone == "bc_gmm":
            raise ValueError("bc_gmm takes low-dim observations only; image tasks use pearce, unet or dit")
    if backbone in ("unet", "dit"):
        cfg.sequence = dict(obs_steps=2, horizon=16, action_steps=8)
        cfg.batch_size = 64 if images else 256
        size = dict(hidden=0)               # 0: the backbone's own width (UNet model_dim 256, DiT d_model 384)
        if images and backbone == "dit":    # the official image DiT: d_model 320, 10 heads, depth 2
            size = dict(hidden=320, dit_heads=10, dit_depth=2)
        cfg.agent_config.lr = 1e-4 if backbone == "unet" else 5e-4
        cfg.agent_config.diffusion.update(network=backbone, sampling_steps=50, **size)
        # 16 contraction rows per update kept the whole batch's effect on Lift over 18 seeds at ~1.1x DP's cost
        cfg.agent_config.diffusion.contraction.update(num_probes=1, low_noise_fraction=1.0, rows=16)
    elif backbone == "bc_gmm":
        cfg.agent, cfg.agent_config = "bc_gmm", default_agent_config("bc_gmm")
    return cfg
