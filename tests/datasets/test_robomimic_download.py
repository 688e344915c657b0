"""robomimic's released files: the download is checked, resumable and atomic, and every failure is one line.

The server is a local HTTP server that serves a small file in robomimic's layout at the path Hugging Face serves the
real one, honours range requests like a CDN, and can cut a response short or answer with something else."""
import http.server
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest

from cdp_jax.datasets import robomimic_download as D
from cdp_jax.datasets import robomimic_releases as R
from cdp_jax.datasets import robomimic_hdf5 as H
from cdp_jax.io import download, stopping

LIFT_KEYS = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def lift_bytes(tmp_path, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    episodes = [{"obs": {k: rng.normal(size=(n, d)) for k, d in LIFT_KEYS.items()}, "actions": rng.normal(size=(n, 7)),
                 "rewards": np.zeros(n), "states": rng.normal(size=(n, 5))} for n in (30, 40)]
    path = H.write_demos(str(tmp_path / "source.hdf5"), episodes, {"env_name": "Lift", "type": 1, "env_kwargs": {}})
    with open(path, "rb") as f:
        return f.read()


class Server:
    """Serves ``body`` at ``/{REPOSITORY}/lift/ph/low_dim_v15.hdf5`` through a redirect, as Hugging Face does;
    ``cut_at`` ends the next full response after that many bytes (the connection closes); the Range header of
    every request that reaches the file is kept in ``ranges`` (a resumed download's range survives the redirect),
    its If-Range header in ``if_ranges``; ``etag`` is the file's version: a range whose If-Range names another
    version is answered with the whole file (200), as RFC 9110 says."""

    def __init__(self, body: bytes):
        self.body, self.cut_at, self.ranges, self.if_ranges, self.delay = body, None, [], [], 0.0
        self.etag = '"v1"'
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == f"/{R.REPOSITORY}/lift/ph/low_dim_v15.hdf5":     # as Hugging Face: to its CDN
                    self.send_response(302)
                    self.send_header("Location", "/cdn/lift-ph-low_dim")
                    self.end_headers()
                    return
                if self.path != "/cdn/lift-ph-low_dim":
                    self.send_error(404, "Entry not found")
                    return
                asked, if_range = self.headers.get("Range"), self.headers.get("If-Range")
                server.ranges.append(asked)
                server.if_ranges.append(if_range)
                if if_range is not None and if_range != server.etag:
                    asked = None                                # changed since: the whole file
                time.sleep(server.delay)
                start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0
                if start >= len(server.body):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206 if asked else 200)
                self.send_header("Content-Length", str(len(server.body) - start))
                self.send_header("ETag", server.etag)
                self.end_headers()
                end = len(server.body) if server.cut_at is None else server.cut_at
                server.cut_at = None
                self.wfile.write(server.body[start:end])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(tmp_path):
    s = Server(lift_bytes(tmp_path))
    yield s
    s.close()


def test_a_download_cut_short_resumes_and_only_a_whole_checked_file_appears(server, tmp_path):
    path = str(tmp_path / "robomimic" / "lift" / "ph" / "low_dim_v15.hdf5")
    server.cut_at = len(server.body) // 3
    with pytest.raises(ValueError, match="rerun the same command to resume"):
        D.download("lift", path=path, endpoint=server.endpoint, progress=False)
    assert not os.path.exists(path) and os.path.getsize(path + ".part") == len(server.body) // 3
    assert D.download("lift", path=path, endpoint=server.endpoint, progress=False) == path
    assert server.ranges == [None, f"bytes={len(server.body) // 3}-"]           # the second request resumed
    assert server.if_ranges == [None, '"v1"']                   # if the file is still the version it began with
    assert not os.path.exists(path + ".part") and not os.path.exists(path + ".part.validator")
    with open(path, "rb") as f:
        assert f.read() == server.body
    demos = H.read_demos(path)
    np.testing.assert_array_equal(demos.episode_lengths, [30, 40])
    assert demos.observations.shape == (70, sum(LIFT_KEYS.values()))
    # a file already there is checked and kept, without a request
    assert D.download("lift", path=path, endpoint=server.endpoint, progress=False) == path and len(server.ranges) == 2


def test_a_sigterm_stops_a_download_at_the_next_chunk_and_the_rerun_resumes(server, tmp_path, monkeypatch):
    path, looks, check = str(tmp_path / "low_dim_v15.hdf5"), [], stopping.check
    monkeypatch.setattr(download, "CHUNK", 1024)

    def signal_at_the_second_chunk():
        looks.append(1)
        if len(looks) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        check()
    monkeypatch.setattr(stopping, "check", signal_at_the_second_chunk)
    with pytest.raises(stopping.Stopped, match="SIGTERM: stopped downloading it; rerun the same command to continue"):
        with stopping.stop_promptly("downloading it"):
            D.download("lift", path=path, endpoint=server.endpoint, progress=False)
    assert not os.path.exists(path) and os.path.getsize(path + ".part") == 1024 < len(server.body)
    monkeypatch.undo()
    assert D.download("lift", path=path, endpoint=server.endpoint, progress=False) == path
    assert server.ranges == [None, "bytes=1024-"]
    with open(path, "rb") as f:
        assert f.read() == server.body


def test_a_file_changed_on_the_server_since_the_cut_is_downloaded_whole(server, tmp_path):
    """Resuming must not append a new version of the file to the start of the old one."""
    path = str(tmp_path / "low_dim_v15.hdf5")
    server.cut_at = len(server.body) // 2
    with pytest.raises(ValueError, match="rerun the same command to resume"):
        D.download("lift", path=path, endpoint=server.endpoint, progress=False)
    old = server.body
    (tmp_path / "v2").mkdir()
    server.body, server.etag = lift_bytes(tmp_path / "v2", seed=1), '"v2"'
    assert server.body != old and len(server.body) > len(old) // 2
    D.download("lift", path=path, endpoint=server.endpoint, progress=False)
    assert server.if_ranges == [None, '"v1"']
    with open(path, "rb") as f:
        assert f.read() == server.body
    assert not os.path.exists(path + ".part.validator")


def test_processes_that_ask_for_one_file_at_once_download_it_once(server, tmp_path):
    """The processes of a multi-process sweep each reach the download; the first fetches, the others wait."""
    path = str(tmp_path / "low_dim_v15.hdf5")
    server.delay = 0.5
    threads = [threading.Thread(target=D.download, args=("lift",), kwargs=dict(
        path=path, endpoint=server.endpoint, progress=False)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.ranges == [None] and H.check_file(path)[1] == 2


def test_an_answer_that_is_not_a_robomimic_file_leaves_nothing(server, tmp_path):
    path = str(tmp_path / "out" / "low_dim_v15.hdf5")
    server.body = b"<html>rate limited</html>"
    with pytest.raises(ValueError, match="is not a robomimic file.*nothing was kept"):
        D.download("lift", path=path, endpoint=server.endpoint, progress=False)
    assert os.listdir(tmp_path / "out") == []


def test_download_failures_are_one_line_that_names_the_fix(server, tmp_path, monkeypatch):
    path = str(tmp_path / "low_dim_v15.hdf5")
    with pytest.raises(ValueError, match=r"HTTP 404 .*copy the file by hand to"):
        D.download("can", path=path, endpoint=server.endpoint, progress=False)
    with socket.socket() as s:                          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(ValueError, match=r"cannot reach .*copy it to"):
        D.download("lift", path=path, endpoint=closed, progress=False)
    with pytest.raises(ValueError, match=r"no 'mh' demonstrations of task 'tool_hang'"):
        D.download("tool_hang", "mh")
    with pytest.raises(ValueError, match=r"observation type 'rgb'; use one of \['low_dim', 'image'\]"):
        R.url("lift", obs="rgb")
    with open(path, "wb") as f:                         # a damaged file in the way
        f.write(b"garbage")
    with pytest.raises(ValueError, match="not a readable HDF5 file.*rerun with --overwrite"):
        D.download("lift", path=path, endpoint=server.endpoint, progress=False)
    assert D.download("lift", path=path, endpoint=server.endpoint, progress=False, overwrite=True) == path
    # the sweep's dataset id of a released file that is not here names the download command
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    assert R.released("robomimic/transport/ph/image_v15.hdf5") == ("transport", "ph", "image")
    assert R.released("robomimic/lift/scripted/low_dim.hdf5") is None
    with pytest.raises(ValueError, match=r"download it with `python -m cdp_jax.datasets download "
                                         r"robomimic-transport --obs=image`"):
        H.read_demos("robomimic/transport/ph/image_v15.hdf5")


def test_the_download_command_line(server, tmp_path, monkeypatch, capsys):
    from cdp_jax.datasets.__main__ import main
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", server.endpoint)     # what HF_ENDPOINT sets at import
    assert main(["download", "robomimic-lift"]) == 0
    assert os.path.isfile(tmp_path / "robomimic" / "lift" / "ph" / "low_dim_v15.hdf5")
    assert main(["list"]) == 0
    assert "robomimic/lift/ph/low_dim_v15.hdf5" in capsys.readouterr().out
    assert main(["download", "pointmaze-umaze"]) == 2
    assert "only robomimic and D4RL files are downloaded here" in capsys.readouterr().err
    assert main(["download", "robomimic-lift", "--kind=xx"]) == 2
    assert "unknown robomimic dataset kind 'xx'" in capsys.readouterr().err


def test_a_sweep_downloads_a_released_file_on_first_use(server, tmp_path, monkeypatch):
    """As a Minari id is downloaded on first use: a robomimic config naming a released file that is not here."""
    import cdp_jax.datasets.source
    from cdp_jax.train.sweep import Sweep
    from experiments.configs.robomimic import get_config
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", server.endpoint)
    monkeypatch.setattr(cdp_jax.datasets.source, "hub_reachable", lambda: True)
    cfg = get_config("lift")
    cfg.dataset_id, cfg.generate = R.dataset_id("lift"), ""
    data, info = Sweep(cfg, str(tmp_path / "run"), progress=False)._dataset()
    assert os.path.isfile(tmp_path / "datasets" / "robomimic" / "lift" / "ph" / "low_dim_v15.hdf5")
    assert info.total_steps == 70 and server.ranges == [None]


def test_the_processes_of_a_sweep_make_a_missing_dataset_once(tmp_path, monkeypatch):
    """Several sweep processes (threads here) that find their dataset missing: one makes it, the others wait on
    the datasets folder's lock and then find it."""
    import cdp_jax.datasets.source
    from cdp_jax.datasets.source import make_missing_dataset
    from cdp_jax.train.sweep import Sweep
    from experiments.configs.robomimic import get_config
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    made = []

    def generate(name, dataset_id, *args, **kwargs):
        made.append(name)
        time.sleep(0.5)
        path = H.resolve_path(dataset_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(lift_bytes(tmp_path))

    monkeypatch.setattr(cdp_jax.datasets.source, "generate_dataset", generate)
    sweeps = [Sweep(get_config("lift"), str(tmp_path / f"run{i}"), progress=False) for i in range(3)]
    threads = [threading.Thread(target=make_missing_dataset, args=(s.cfg, s.progress)) for s in sweeps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == ["robomimic-lift"]
