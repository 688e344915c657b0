"""One checked, resumable, atomic download of a file over HTTP(S): the path every dataset download takes
(robomimic's released files, D4RL's)."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Callable

from cdp_jax.io import atomic_write_text, folder_lock
from cdp_jax.io import stopping

CHUNK = 1 << 20                   # bytes read between two looks for a stop request


def download_file(source: str, path: str, check: Callable[[str], object], *, what: str, overwrite: bool = False,
                  progress: bool = True, timeout: float = 30.0) -> str:
    """Downloads ``source`` to ``path`` and returns ``path``: the bytes go to ``path.part`` (an interrupted download
    resumes there) and become ``path`` only once ``check(part)`` accepts them (it raises ValueError otherwise), so
    a crash or a bad answer never leaves a file that a reader would take. Several processes take turns (a lock on
    the folder): one downloads, the others find the file. A file already there is checked and kept (``overwrite``
    fetches it again). Every failure is one ValueError line naming the URL and where to put the file by hand."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with folder_lock(os.path.dirname(os.path.abspath(path))):
        return _download_locked(source, path, check, what, overwrite, progress, timeout)


def _download_locked(source: str, path: str, check, what: str, overwrite: bool, progress: bool,
                     timeout: float) -> str:
    if os.path.exists(path) and not overwrite:
        try:
            check(path)
        except ValueError as err:
            raise ValueError(f"{err}; rerun with --overwrite to download it again") from None
        return path
    part = path + ".part"
    if overwrite:
        _remove(part, part + ".validator")
    _fetch(source, part, path, progress, timeout)
    try:
        check(part)
    except ValueError as err:
        _remove(part, part + ".validator")
        raise ValueError(f"what {source} sent is not {what} ({err}); nothing was kept") from None
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
        raise ValueError(f"{source} answered HTTP {err.code} ({err.reason}); check the dataset's name, or copy the file "
                         f"by hand to {path}") from None
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
                while chunk := response.read(CHUNK):
                    stopping.check()          # the bytes so far stay in the part: a rerun resumes after them
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
