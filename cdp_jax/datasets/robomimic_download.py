"""robomimic's released demonstrations (v1.5, recorded with robosuite 1.5, the version installed here): one checked,
resumable, atomic download into the place the robomimic configs read it from (which files exist and where they are
served: :mod:`cdp_jax.datasets.robomimic_releases`).

    python -m cdp_jax.datasets download robomimic-transport                      # transport/ph/low_dim_v15.hdf5
    python -m cdp_jax.datasets download robomimic-lift --kind=mh --obs=image

A file goes to ``$MINARI_DATASETS_PATH/robomimic/TASK/KIND/OBS_v15.hdf5``, i.e. the sweep's ``dataset_id``
``robomimic/TASK/KIND/OBS_v15.hdf5`` (the ``transport`` configs name that id already), from the Hugging Face dataset
``robomimic/robomimic_datasets`` that robomimic's own ``download_datasets.py`` fetches (``HF_ENDPOINT`` picks a
mirror). The bytes arrive in ``FILE.part`` (an interrupted download resumes there) and become ``FILE`` only once
they open as a robomimic file, so a crash or a bad answer never leaves a file the sweep would read.
"""
from __future__ import annotations

from cdp_jax.datasets.robomimic_hdf5 import check_file, resolve_path
from cdp_jax.datasets.robomimic_releases import dataset_id, url
from cdp_jax.io.download import download_file


def download(task: str, kind: str = "ph", obs: str = "low_dim", *, path: str | None = None,
             endpoint: str | None = None, overwrite: bool = False, progress: bool = True,
             timeout: float = 30.0) -> str:
    """Downloads a released file to ``path`` (default: its place under the datasets folder) and returns ``path``.

    A file already there is checked and kept (``overwrite`` fetches it again). Raises ValueError, in one line, for
    an unreleased file, an unreachable or refusing server (naming where to copy the file by hand), a download cut
    short (rerun to resume) and an answer that is not a robomimic HDF5 file (removed)."""
    source = url(task, kind, obs, endpoint)
    path = path or resolve_path(dataset_id(task, kind, obs))
    return download_file(source, path, check_file, what="a robomimic file", overwrite=overwrite, progress=progress,
                         timeout=timeout)
