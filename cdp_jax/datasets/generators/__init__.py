"""Dataset generators by name, with their default ids and step counts; ``generate`` refuses an existing id
before collecting a single step."""
from __future__ import annotations

import dataclasses
from typing import Callable

from cdp_jax.datasets.generators.writing import refuse_existing
from cdp_jax.datasets.generators import pointmaze
from cdp_jax.datasets.generators import robomimic_scripted
from cdp_jax.datasets.robomimic_hdf5 import resolve_path
from cdp_jax.datasets.generators import toy


@dataclasses.dataclass(frozen=True)
class Generator:
    name: str
    dataset_id: str
    default_steps: int
    run: Callable[..., str]        # run(dataset_id, num_steps, seed, overwrite, progress) -> folder
    summary: str


def _pointmaze(maze: str) -> Callable[..., str]:
    def run(dataset_id, num_steps, seed, overwrite, progress):
        return pointmaze.generate(maze, dataset_id, num_steps, seed, overwrite, progress=progress)
    return run


def _robomimic(task: str) -> Callable[..., str]:
    def run(dataset_id, num_demos, seed, overwrite, progress, image_size=0):
        report = robomimic_scripted.generate(task, resolve_path(dataset_id), num_demos, seed, overwrite,
                                             progress=progress, image_size=image_size)
        print(f"{report['demos']} demos in {report['attempts']} attempts (controller success "
              f"{report['success_rate']:.0%}), {report['seconds']:.0f} s")
        return report["path"]
    return run


def _toy(dataset_id, num_steps, seed, overwrite, progress):
    return toy.generate(dataset_id, num_steps, seed, overwrite, progress)


GENERATORS = {
    **{f"pointmaze-{maze}": Generator(f"pointmaze-{maze}", f"local/pointmaze/{maze}-v0", 1_000_000, _pointmaze(maze),
                                      f"D4RL/Minari maze2d recipe on PointMaze {maze} (waypoint planner + PD, noise 0.5)")
       for maze in ("open", "umaze", "medium", "large")},
    "toy-reach": Generator("toy-reach", "local/toy/reach-v0", 5_000, _toy, "2-D reaching with bimodal demonstrations"),
    **{f"robomimic-{task}": Generator(f"robomimic-{task}", f"robomimic/{task}/scripted/low_dim.hdf5", 200,
                                      _robomimic(task), f"robomimic {task.capitalize()} (robomimic HDF5 layout; "
                                      f"--steps counts successful scripted demos)")
       for task in ("lift", "can", "square")},
}


def _lookup(name: str) -> Generator:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; choose one of {sorted(GENERATORS)}")
    return GENERATORS[name]


def generate(name: str, dataset_id: str | None = None, num_steps: int | None = None, seed: int = 0,
             overwrite: bool = False, progress: bool = True, image_size: int = 0) -> str:
    """Generates dataset ``name`` under ``dataset_id`` (default: its ``local/...`` id; robomimic with
    ``image_size > 0``: ``.../image.hdf5``, with both cameras); returns the folder."""
    gen = _lookup(name)
    num_steps = gen.default_steps if num_steps is None else int(num_steps)
    if num_steps < 1:
        raise ValueError(f"--steps must be >= 1, got {num_steps}")
    if image_size and not name.startswith("robomimic-"):
        raise ValueError(f"--images applies to the robomimic-* generators only, not {name!r}")
    if image_size < 0:
        raise ValueError(f"--image_size must be > 0, got {image_size}")
    dataset_id = dataset_id or (gen.dataset_id.replace("low_dim.hdf5", "image.hdf5") if image_size else gen.dataset_id)
    refuse_existing(dataset_id, overwrite)                 # before collecting a single step
    if image_size:
        return gen.run(dataset_id, num_steps, seed, overwrite, progress, image_size=image_size)
    return gen.run(dataset_id, num_steps, seed, overwrite, progress)
