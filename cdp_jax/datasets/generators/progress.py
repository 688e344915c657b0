"""The demonstrations a generator has made so far, on disk as it makes them, so that a stopped generation continues
where it was: ``FOLDER/demo_N.npz`` per demo, then ``FOLDER/progress.json`` (how many demos and attempts, the random
generator's state after the last demo, and the settings they were made with), each written atomically. A rerun
with the same settings gives the same file as a run that was never stopped."""
from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np

from cdp_jax.io import atomic_write_bytes, atomic_write_text


class DemoProgress:
    """``load()`` -> ``(episodes, attempts, rng_state or None)``; ``add(...)`` after each kept demo; ``finish()``
    once the whole file is written. Progress made with other ``settings`` (or ``overwrite``) is discarded."""

    def __init__(self, folder: str, settings: dict, overwrite: bool = False):
        self.folder, self.settings = folder, dict(settings)
        if overwrite:
            self.finish()

    def load(self) -> tuple[list[dict], int, dict | None]:
        meta_path = os.path.join(self.folder, "progress.json")
        if not os.path.exists(meta_path):
            return [], 0, None
        with open(meta_path) as f:
            meta = json.load(f)
        if meta["settings"] != self.settings:
            print(f"discarding the demos in {self.folder}: made with {meta['settings']}, not {self.settings}")
            self.finish()
            return [], 0, None
        episodes = [self._read(os.path.join(self.folder, f"demo_{i}.npz")) for i in range(meta["demos"])]
        print(f"continuing from the {len(episodes)} demos already made ({self.folder})", flush=True)
        return episodes, int(meta["attempts"]), meta["rng_state"]

    def add(self, index: int, episode: dict, attempts: int, rng_state: dict) -> None:
        arrays = {f"obs/{k}": v for k, v in episode["obs"].items()}
        arrays.update(actions=episode["actions"], rewards=episode["rewards"], states=episode["states"],
                      attrs=np.asarray(json.dumps(episode.get("attrs", {}))))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(os.path.join(self.folder, f"demo_{index}.npz"), buf.getvalue())
        atomic_write_text(os.path.join(self.folder, "progress.json"), json.dumps(
            dict(settings=self.settings, demos=index + 1, attempts=attempts, rng_state=rng_state)))

    def finish(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _read(path: str) -> dict:
        with np.load(path) as z:
            episode = {"obs": {k[4:]: z[k] for k in z.files if k.startswith("obs/")}}
            episode.update({k: z[k] for k in ("actions", "rewards", "states")}, attrs=json.loads(str(z["attrs"])))
        return episode
