"""Image-observation speed and memory figures on this machine, as one JSON file rewritten after every figure.

    python -m benchmarks.speed.image_throughput [--out=benchmarks/results/images_cpu_DATE.json] [--demos=10,40] [--steps=4]
        [--parts=render,generate,train]

* ``render``: robosuite Lift env-steps/s with robomimic's two 84 x 84 cameras rendered offscreen (EGL; llvmpipe on
  a CPU machine) against the same environment without cameras.
* ``generate``: seconds per scripted Lift demo with both cameras; the host memory that loading them takes (peak
  resident-set growth of ``load_transitions``) at each size of ``--demos``, and the line through them
  extrapolated to 200 demos of the generated length and of PH Lift's (about 48 frames).
* ``train``: update steps/s on 84 x 84 two-camera observations (ResNet-18 GroupNorm per camera, crops to 76,
  obs history 2, batch 64): the Pearce MLP (one action) at γ = 0 and 0.1, DP-Unet and CDP-Unet (chunk 16 x 7,
  one probe; a quarter of ``--steps`` per timed call: a UNet step takes seconds on a CPU), each timed as calls of
  one compiled update. The contraction term acts on the actions only, so its cost ratio should stay near the
  low-dim one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags

from benchmarks.speed.contraction_cost import steps_per_second
from benchmarks import record
from cdp_jax.envs import robomimic_env as R
from cdp_jax.datasets.generators import robomimic_scripted

PARTS = ("render", "generate", "train")
PH_LIFT_FRAMES_PER_DEMO = 48


def render_figures(steps: int = 100) -> dict:
    out = {}
    for size in (0, 84):
        env = R.make_env(R.default_env_args("lift", size), R.TASKS["lift"].obs_keys + (R.CAMERAS if size else ()))
        env.reset(0)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(rng.uniform(-1, 1, 7))
        out["two_cameras_84" if size else "no_cameras"] = steps / (time.perf_counter() - start)
        env.close()
    return {"lift_env_steps_per_s": out}


def generate_figures(demos: list[int]) -> dict:
    """Per size in ``demos``: seconds per demo, frames, and the peak host memory of loading the file; then the
    least-squares line through (frames, peak) extrapolated to 200 demos (its intercept is what loading costs
    whatever the size: JAX's own buffers and compiled gathers)."""
    sizes = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in demos:
            path = os.path.join(tmp, f"image{n}.hdf5")
            report = robomimic_scripted.generate("lift", path, n, seed=1, progress=False, image_size=84)
            peak, frames, frame_bytes = _load_peak_bytes(path)
            sizes.append(dict(demos=n, seconds_per_demo=report["seconds"] / n, frames=frames,
                              file_mib=os.path.getsize(path) / 2**20, load_peak_rss_growth_mib=peak / 2**20))
    frames = np.array([s["frames"] for s in sizes], float)
    peaks = np.array([s["load_peak_rss_growth_mib"] for s in sizes])
    slope, intercept = np.polyfit(frames, peaks, 1) if len(sizes) > 1 else (peaks[0] / frames[0], 0.0)
    per_demo = frames.sum() / sum(demos)
    return dict(lift_image_loads=sizes, device_frame_bytes=frame_bytes, load_mib_per_frame=slope,
                load_fixed_mib=intercept,
                extrapolated_200_generated_demos_mib=intercept + slope * 200 * per_demo,
                extrapolated_200_ph_demos_mib=intercept + slope * 200 * PH_LIFT_FRAMES_PER_DEMO)


_LOAD = """
import sys
import jax.numpy as jnp
from cdp_jax.datasets.robomimic_hdf5 import load_transitions
from experiments.configs.robomimic import IMAGE_OBS_KEYS
def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
jnp.zeros(1).block_until_ready()
open("/proc/self/clear_refs", "w").write("5")          # resets the peak (VmHWM) to the current size
before = status("VmRSS:")
data, _ = load_transitions(sys.argv[1], obs_steps=2, obs_keys=IMAGE_OBS_KEYS["lift-image"])
data.frames.block_until_ready()
print(status("VmHWM:") - before, data.frames.shape[0], data.frames.shape[1])
"""


def _load_peak_bytes(path: str) -> tuple[int, int, int]:
    """``(peak resident-set growth, frames, bytes per frame)`` of loading ``path`` in a fresh process (after its
    imports and JAX's start; Linux: the peak is reset through ``/proc/self/clear_refs``)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", _LOAD, path], cwd=root, capture_output=True, text=True, check=True)
    peak, frames, frame_bytes = out.stdout.strip().splitlines()[-1].split()
    return int(peak), int(frames), int(frame_bytes)


def train_figures(steps: int, keep) -> None:
    """Records each figure as soon as it is measured (a UNet step on images takes tens of seconds on a CPU)."""
    image = dict(cameras=R.CAMERAS, height=84, width=84, crop=76, low_dim=9, obs_steps=2, emb_dim=256)
    obs_dim = 2 * (9 + 2 * 84 * 84 * 3)
    pearce = dict(network="pearce", obs_dim=obs_dim, act_dim=7, batch_size=64, image=image)
    unet = dict(network="unet", obs_dim=obs_dim, act_dim=112, batch_size=64, horizon=16, image=image)
    out = {}
    for name, gamma, probes, kw, n in (("pearce", 0.0, 0, pearce, steps), ("cdp_pearce_exact", 0.1, 0, pearce, steps),
                                       ("dp_unet", 0.0, 0, unet, max(1, steps // 4)),
                                       ("cdp_unet_1_probe", 0.1, 1, unet, max(1, steps // 4))):
        out[name] = steps_per_second("dbc", "frobenius", 1.0, gamma, n, scan=False, num_probes=probes, **kw)
        ratios = {k: out[a] / out[b] for k, a, b in (("pearce", "pearce", "cdp_pearce_exact"),
                                                     ("unet", "dp_unet", "cdp_unet_1_probe")) if b in out}
        keep({"updates_per_s_batch64": dict(out), "cdp_over_dbc_step_time": ratios})


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("out", "", "the result file, rewritten as figures arrive (default: benchmarks/results/"
                        "images_DEVICE_DATE.json)", flag_values=fv)
    flags.DEFINE_list("demos", ["10", "40"], "sizes (demos) of the image files to generate and load", flag_values=fv)
    flags.DEFINE_integer("steps", 4, "update steps per timed call", flag_values=fv)
    flags.DEFINE_list("parts", list(PARTS), f"comma list of {PARTS}", flag_values=fv)


def main(_, args: flags.FlagValues) -> int:
    if set(args.parts) - set(PARTS):
        print(f"error: --parts names unknown parts {sorted(set(args.parts) - set(PARTS))}; choose from {PARTS}",
              file=sys.stderr)
        return 2
    import jax
    figures = dict(device=jax.devices()[0].device_kind, date=time.strftime("%Y-%m-%d"))
    def keep(new: dict) -> None:
        figures.update(new)
        record.write(args.out or record.dated_path("images"), figures)
        print(json.dumps(new), flush=True)

    measure = {"render": lambda: keep(render_figures()), "generate": lambda: keep(generate_figures([int(n) for n in args.demos])),
               "train": lambda: train_figures(args.steps, keep)}
    for part in args.parts:
        measure[part]()
    return 0


if __name__ == "__main__":
    from cdp_jax.train.cli import run_flags_cli
    sys.exit(run_flags_cli(["python -m benchmarks.speed.image_throughput", *sys.argv[1:]], __doc__, define_flags, main))
