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

import os
import urllib.error
import urllib.request

from cdp_jax.datasets.robomimic_hdf5 import check_file, resolve_path
from cdp_jax.io import atomic_write_text, folder_lock
from cdp_jax.datasets.robomimic_releases import dataset_id, url

def download(task: str, kind: str = "ph", obs: str = "low_dim", *, path: str | None = None,
             endpoint: str | None = None, overwrite: bool = False, progress: bool = True,
             timeout: float = 30.0) -> str:
    """Downloads a released file to ``path`` (default: its place under the datasets folder) and returns ``path``.

    A file already there is checked and kept (``overwrite`` fetches it again). Raises ValueError, in one line, for
    an unreleased file, an unreachable or refusing server (naming where to copy the file by hand), a download cut
    short (rerun to resume) and an answer that is not a robomimic HDF5 file (removed)."""
    source = url(task, kind, obs, endpoint)
    path = path or resolve_path(dataset_id(task, kind, obs))
    with folder_lock(os.path.dirname(os.path.abspath(path))):     # several processes: one downloads
        return _download_locked(source, path, overwrite, progress, timeout)


def _download_locked(source: str, path: str, overwrite: bool, progress: bool, timeout: float) -> str:
    if os.path.exists(path) and not overwrite:
        try:
            check_file(path)
        except ValueError as err:
            raise ValueError(f"{err}; rerun with --overwrite to download it again") from None
        return path
    part = path + ".part"
    if overwrite:
        _remove(part, part + ".validator")
    _fetch(source, part, path, progress, timeout)
    try:
        check_file(part)
    except ValueError as err:
        _remove(part, part + ".validator")
        raise ValueError(f"what {source} sent is not a robomimic file ({err}); nothing was kept") from None
    os.replace(part, path)
    _remove(part + ".validator")
    return path


def _remove(*paths: str) -> None:
    for p in paths:
        if os.path.exists(p):
            os.remove(p)


def _validator(headers) -> str | None:
    """The response's strong validator for ``If-Range``: its ETag, else its Last-Modified date (RFC 9110 13.1.5:
    a weak ETag may not be used)."""
    etag = headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")


def _fetch(source: str, part: str, path: str, progress: bool, timeout: float) -> None:
    """Streams ``source`` into ``part``, resuming after the bytes already there: an HTTP range request with
    ``If-Range`` set to the validator (ETag or date) that the first response gave, kept in ``part.validator``, so
    that a file changed on the server since is sent whole, not appended to the old one's start."""
    from tqdm import tqdm
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and os.path.exists(part + ".validator"):
        with open(part + ".validator") as f:
            headers["If-Range"] = f.read()
    request = urllib.request.Request(source, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:            # nothing left to send: the part is whole
            return
        raise ValueError(f"{source} answered HTTP {err.code} ({err.reason}); check the task, kind and observation "
                         f"type, or copy the file by hand to {path}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ValueError(f"cannot reach {source} ({reason}); without a network, download it elsewhere and copy it "
                         f"to {path}") from None
    with response:
        if response.status != 206:              # the server ignored the range, or the file changed: start again
            have = 0
            validator = _validator(response.headers)
            if validator:
                atomic_write_text(part + ".validator", validator)
            else:
                _remove(part + ".validator")
        size = response.headers.get("Content-Length")
        total = have + int(size) if size is not None else None
        with open(part, "ab" if have else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
                desc=os.path.basename(path)) as bar:
            try:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            except OSError as err:
                raise ValueError(f"the download of {source} broke off after {out.tell() / 2**20:.1f} MiB ({err}); "
                                 f"rerun the same command to resume it") from None
            out.flush()
            os.fsync(out.fileno())
            received = out.tell()
    if total is not None and received < total:
        raise ValueError(f"the download of {source} ended after {received} of {total} bytes; rerun the same "
                         f"command to resume it")
