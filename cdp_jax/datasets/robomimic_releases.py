"""robomimic's released demonstrations (v1.5, recorded with robosuite 1.5): which files exist, where each is served, and
the sweep ``dataset_id`` and download command of each (:mod:`cdp_jax.datasets.robomimic_download` fetches them)."""
from __future__ import annotations

import re

REPOSITORY = "datasets/robomimic/robomimic_datasets/resolve/main/v1.5"
# Proficient-human (ph) and multi-human (mh) demonstrations of the tasks cdp_jax.envs.robomimic_env runs (robomimic also
# releases tool_hang ph, and machine-generated lift and can: not evaluated here).
RELEASED = {"ph": ("lift", "can", "square", "transport"), "mh": ("lift", "can", "square", "transport")}
OBSERVATIONS = ("low_dim", "image")
_ID = re.compile(r"robomimic/([a-z_]+)/([a-z]+)/([a-z_]+)_v15\.hdf5")


def check(task: str, kind: str, obs: str) -> None:
    """Refuses, in one line, a file robomimic did not release (naming the ones it did)."""
    if kind not in RELEASED:
        raise ValueError(f"unknown robomimic dataset kind {kind!r}; use one of {sorted(RELEASED)}")
    if task not in RELEASED[kind]:
        raise ValueError(f"robomimic released no {kind!r} demonstrations of task {task!r}; {kind} has "
                         f"{list(RELEASED[kind])}")
    if obs not in OBSERVATIONS:
        raise ValueError(f"unknown robomimic observation type {obs!r}; use one of {list(OBSERVATIONS)}")


def dataset_id(task: str, kind: str = "ph", obs: str = "low_dim") -> str:
    """The sweep's ``dataset_id`` of a released file, relative to the datasets folder."""
    check(task, kind, obs)
    return f"robomimic/{task}/{kind}/{obs}_v15.hdf5"


def released(dataset_id: str) -> tuple[str, str, str] | None:
    """``(task, kind, obs)`` when ``dataset_id`` is a released file's place (``dataset_id(...)``), else None."""
    match = _ID.fullmatch(str(dataset_id))
    if match is None:
        return None
    try:
        check(*match.groups())
    except ValueError:
        return None
    return match.groups()


def url(task: str, kind: str = "ph", obs: str = "low_dim", endpoint: str | None = None) -> str:
    """Where a released file is served (``endpoint`` defaults to ``HF_ENDPOINT`` or huggingface.co)."""
    from huggingface_hub import constants
    check(task, kind, obs)
    return f"{(endpoint or constants.ENDPOINT).rstrip('/')}/{REPOSITORY}/{task}/{kind}/{obs}_v15.hdf5"


def command(task: str, kind: str = "ph", obs: str = "low_dim") -> str:
    """The command line that downloads a released file."""
    return (f"python -m cdp_jax.datasets download robomimic-{task}" + (f" --kind={kind}" if kind != "ph" else "")
            + (f" --obs={obs}" if obs != "low_dim" else ""))
