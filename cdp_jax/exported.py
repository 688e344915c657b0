"""Run an exported cdp_jax policy WITHOUT the training code: this module imports only jax and numpy.

    from cdp_jax.exported import load_exported
    act = load_exported("policy.cdpx")        # act(obs [B, obs_dim] float32, seed: int) -> actions [B, act_dim]
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

FORMAT = "cdp_jax-exported-policy"
FORMAT_VERSION = 1
MAGIC = b"CDPX"


class ExportError(ValueError):
    """An exported file that cannot be run here; the message says why."""


def read_header(path: str) -> tuple[dict, bytes]:
    if os.path.isdir(path):
        raise ExportError(f"{path} is a folder, not an exported policy file; a sweep workdir loads with "
                          f"cdp_jax.train.policy.load_policy(workdir, ...)")
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as err:
        raise ExportError(f"cannot read exported policy {path}: {err.strerror}") from None
    if blob[:4] != MAGIC:
        raise ExportError(f"{path} is not a cdp_jax exported policy (no {MAGIC!r} header)")
    size = int.from_bytes(blob[4:12], "little")
    try:
        header = json.loads(blob[12:12 + size])
    except ValueError:
        raise ExportError(f"{path} has a damaged header; export the policy again") from None
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path} was written by an incompatible cdp_jax export format "
                          f"(version {header.get('format_version')}, this reader needs {FORMAT_VERSION}); export it "
                          f"again with this version's policy.export(path)")
    return header, blob[12 + size:]


class ExportedPolicy:
    """``policy(obs, seed)``: raw observations in, environment actions out. ``header`` holds the metadata."""

    def __init__(self, path: str):
        self.header, payload = read_header(path)
        try:
            self._exported = jax.export.deserialize(bytearray(payload))
        except Exception as err:  # noqa: BLE001
            raise ExportError(f"{path} cannot be deserialised by jax {jax.__version__} (written by jax "
                              f"{self.header.get('jax_version')}): {type(err).__name__}; export it again") from None

    def __call__(self, obs, seed: int = 0) -> np.ndarray:
        obs = np.asarray(obs, np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.header["obs_dim"]:
            raise ValueError(f"observations must have shape [B, {self.header['obs_dim']}], got {obs.shape}")
        key = np.asarray(jax.random.key_data(jax.random.PRNGKey(seed)))
        return np.asarray(self._exported.call(obs, key))


def load_exported(path: str) -> ExportedPolicy:
    return ExportedPolicy(path)
