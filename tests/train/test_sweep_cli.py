"""experiments.sweep's command line, configs and bad input (the driver's resumes, stops and records: test_sweep.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cdp_jax.train import config, results, sweep
from tests.tiny import run, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("overrides,message", [
    (dict(data_fractions=(1.0, -0.5)), "data_fractions must lie in"),
    (dict(gammas=()), "gammas is empty"),
    (dict(agent="ppo"), "unknown agent 'ppo'"),
    (dict(seeds=0), "seeds must be a positive count"),
    (dict(num_steps=30), "multiple of eval_every"),
    (dict(progress_every=3), "progress_every=3 must divide eval_every=20"),
    (dict(eval_seed=-1), "eval_seed must be >= 0"),               # gymnasium refused it, with a traceback, at step 20
    (dict(members_per_program=-1), "members_per_program must be >= 0"),
    (dict(eta=-1.0), "eta .* must be finite and >= 0"),
    (dict(consistency_states=0), "consistency_states must be >= 1"),
    (dict(consistency_samples=1), "consistency_samples must be >= 2"),
])
def test_bad_values_are_refused_before_compute(minari_root, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        sweep.Sweep(tiny_config(**overrides), str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")


@pytest.mark.slow
def test_bad_workdirs_are_refused(minari_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="not writable"):
        sweep.Sweep(tiny_config(), str(blocker / "workdir"))
    with pytest.raises(ValueError, match="is a file, not a folder"):
        sweep.Sweep(tiny_config(), str(blocker))
    run(tiny_config(num_steps=20), tmp_path / "w")
    with pytest.raises(ValueError, match="holds a sweep with a different config.*overwrite=True"):
        sweep.Sweep(tiny_config(num_steps=60), str(tmp_path / "w"))
    sweep.Sweep(tiny_config(num_steps=60, overwrite=True), str(tmp_path / "w"))


def _cli(args, env_extra=None, timeout=600):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "experiments.sweep", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_cli_starts_without_distrax_and_scipy_stats():
    """A start loads what every run needs: distrax (TFP's JAX substrate, 0.4 s) and scipy.stats (0.3 s) are imported
    where they are used (the SAC and BC policies, BC-GMM, confidence intervals), not by ``import cdp_jax``."""
    code = ("import sys, experiments.sweep, cdp_jax.train.sweep; "
            "print(sorted(m for m in ('distrax', 'scipy.stats') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr[-2000:])


@pytest.mark.slow
def test_cli_overrides_and_unknown_keys(minari_root, tmp_path):
    workdir = tmp_path / "cli"
    proc = _cli(["--config=experiments/configs/toy2d.py", f"--workdir={workdir}", "--config.num_steps=20",
                 "--config.eval_every=20", "--config.eval_episodes=1", "--config.seeds=1", "--config.gammas=(0.5,)",
                 "--config.data_fractions=(1.0,)", "--config.agent_config.diffusion.hidden=32",
                 "--config.agent_config.diffusion.time_embedding", "cleandiffuser",      # a field the file does not set
                 "--config.agent_config.diffusion.contraction.penalty=hinge",
                 "--config.generate_steps=600", "--config.dataset_id=local/toy/reach-600-v0"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = results.read_csv(workdir / "results.csv")
    assert [(r["gamma"], r["step"]) for r in rows] == [(0.5, 20.0)]
    assert "Sweep summary" in proc.stdout
    diffusion = json.loads((workdir / "policy_meta.json").read_text())["agent_config"]["diffusion"]
    assert (diffusion["hidden"], diffusion["time_embedding"], diffusion["contraction"]["penalty"]) == (
        32, "cleandiffuser", "hinge")
    bad = _cli(["--config=experiments/configs/toy2d.py", f"--workdir={tmp_path / 'x'}", "--config.nonexistent=1"])
    assert bad.returncode != 0 and "nonexistent" in bad.stderr and "Traceback" not in bad.stderr
    for field, message in (("diffusion.bogus=1", "unknown config key --config.agent_config.diffusion.bogus"),
                            ("lr=fast", "--config.agent_config.lr=fast"), ("ema_every=1.5", "ema_every"),
                            ("lr=-0.001", "agent_config.lr must be finite and > 0")):
        bad = _cli(["--config=experiments/configs/toy2d.py", f"--workdir={tmp_path / 'z'}",
                    f"--config.agent_config.{field}"])
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    bad = _cli(["--config=experiments/configs/toy2d.py", f"--workdir={tmp_path / 'y'}", "--config.gammas=()"])
    assert bad.returncode != 0 and "gammas is empty" in bad.stderr and "Traceback" not in bad.stderr


# The official configs/cdp-rl/task files (eta, weight_temperature), (aminabyaneh/contractive-diffusion-policy).
OFFICIAL = {"halfcheetah-medium": (1.0, 50), "halfcheetah-medium-replay": (1.0, 150),
            "halfcheetah-medium-expert": (1.0, 50), "hopper-medium": (1.0, 300), "hopper-medium-replay": (1.0, 300),
            "hopper-medium-expert": (1.0, 8), "walker2d-medium": (1.0, 300), "walker2d-medium-replay": (1.0, 100),
            "walker2d-medium-expert": (1.0, 300)}


@pytest.mark.parametrize("task", sorted(OFFICIAL))
def test_every_paper_row_resolves_with_its_official_settings(minari_root, task):
    import importlib
    cfg = importlib.import_module("experiments.configs.d4rl_mujoco").get_config(task)
    env, _, level = task.partition("-")
    assert (cfg.dataset_id, cfg.agent, cfg.eta, cfg.agent_config.weight_temperature) == (f"d4rl/{task}-v2", "edp",
                                                                                         *OFFICIAL[task])
    config.validate(cfg)
    generated = importlib.import_module("experiments.configs.d4rl_mujoco").get_config(f"{task},gammas,generated")
    assert generated.dataset_id == f"local/mujoco/{env}/{level}-v0" and len(generated.gammas) == 7
    from benchmarks.science import paper_tables as pt
    dataset = next(d for d in pt.preset_datasets("offline", {f"local/mujoco/{env}/{level}-v0"}, 1000)
                   if d.paper_row == task)                    # the paper tables read the same settings
    job = pt.Job("x", dataset, "edp", (1.0,), (0.0,))
    swept = pt.sweep_config(job, pt.BUDGETS["smoke"])
    assert (swept.eta, swept.agent_config.weight_temperature) == OFFICIAL[task]


@pytest.mark.parametrize("path,task,dataset_id,eta,temperature", [
    ("d4rl_kitchen", "partial", "D4RL/kitchen/partial-v2", 0.005, 5.0),
    ("d4rl_antmaze", "large-play", "D4RL/antmaze/large-play-v1", 4.5, 5.0),
])
def test_other_paper_configs_carry_the_official_settings(path, task, dataset_id, eta, temperature):
    import importlib
    cfg = importlib.import_module(f"experiments.configs.{path}").get_config(task)
    assert (cfg.dataset_id, cfg.agent, cfg.eta, cfg.agent_config.weight_temperature) == (dataset_id, "edp", eta, temperature)
    config.validate(cfg)
    with pytest.raises(ValueError, match="unknown MuJoCo task"):
        importlib.import_module("experiments.configs.d4rl_mujoco").get_config("hopper-random")


@pytest.mark.parametrize("overrides,message", [
    (dict(seeds=(0, 0)), "seeds has repeated values"),
    (dict(data_fractions=(1e-9,)), "keeps only 1 of 600 transitions, fewer than one batch"),
    (dict(dataset_id="local/toy/raech-v0"), "is not local, and generator 'toy-reach' writes 'local/toy/reach-v0'"),
    (dict(eval_overlap=True), "eval_overlap needs a device to evaluate on"),
    (dict(eval_max_envs=-1), "eval_max_envs must be >= 0"),
])
@pytest.mark.slow
def test_bad_input_found_at_run_start_writes_nothing(minari_root, tmp_path, overrides, message):
    import minari
    with pytest.raises(ValueError, match=message):
        sweep.Sweep(tiny_config(**overrides), str(tmp_path / "w")).run()
    written = os.listdir(tmp_path / "w") if os.path.exists(tmp_path / "w") else []
    assert written in ([], [".lock"])                               # no config.json to block the corrected rerun
    assert "local/toy/raech-v0" not in minari.list_local_datasets()
    run(tiny_config(num_steps=20), tmp_path / "w")                  # the corrected rerun in the same workdir


@pytest.mark.slow
def test_missing_or_broken_config_file_gets_one_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    for path in (tmp_path / "missing.py", broken):
        proc = _cli([f"--config={path}", f"--workdir={tmp_path / 'w'}"])
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
        assert proc.stderr.strip().startswith("error: bad command line or config") and \
            len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = _cli(["--config=experiments/configs/robomimic.py:liftt", f"--workdir={tmp_path / 'w'}"])  # get_config raises
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "robomimic.py:liftt" in proc.stderr, proc.stderr
    assert "unknown robomimic task 'liftt'; use one of ('lift'" in proc.stderr, proc.stderr
    assert not os.path.exists(tmp_path / "w")
    help_text = _cli(["--config=experiments/configs/quickstart.py", "--help"]).stdout
    assert "--config.gammas=" in help_text and "--config.agent_config.diffusion.network='dql'" in help_text
    assert "--config.agent_config.diffusion.time_embedding='float'" in help_text      # a default the file does not set


def test_plotted_success_intervals_stop_at_zero_and_one_and_returns_are_symmetric():
    mean, ci = np.array([0.95, 0.1, 0.5]), np.array([0.6, 0.3, np.nan])
    np.testing.assert_allclose(results._interval("success", mean, ci), [[0.6, 0.1, 0.0], [0.05, 0.3, 0.0]])
    np.testing.assert_allclose(results._interval("return", mean * 300, ci * 300), [[180, 90, 0], [180, 90, 0]])


def test_wide_cpu_vectors_only_on_avx512_and_never_over_the_callers_width(monkeypatch):
    """``prefer_wide_cpu_vectors`` adds the 512-bit width to XLA_FLAGS on an AVX-512 CPU, keeps the caller's other
    flags, leaves a width the caller set and a CPU without AVX-512 alone."""
    from cdp_jax.train import cli
    monkeypatch.setattr(cli, "cpu_model_and_flags", lambda: ("test cpu", {"avx2", "avx512f"}))
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=1")
    assert cli.prefer_wide_cpu_vectors()
    assert os.environ["XLA_FLAGS"] == "--xla_backend_optimization_level=1 --xla_cpu_prefer_vector_width=512"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_prefer_vector_width=256")
    assert not cli.prefer_wide_cpu_vectors() and os.environ["XLA_FLAGS"] == "--xla_cpu_prefer_vector_width=256"
    monkeypatch.setattr(cli, "cpu_model_and_flags", lambda: ("test cpu", {"avx2", "fma"}))
    monkeypatch.setenv("XLA_FLAGS", "")
    assert not cli.prefer_wide_cpu_vectors() and os.environ["XLA_FLAGS"] == ""


def test_reproduction_configs_run_the_official_network_and_the_library_the_correct_one():
    """Where the paper and the code disagree, the code's version is the reproduction default: CleanDiffuser's
    integer-cast time embedding in every paper config and paper-table job; the sinusoid it means elsewhere."""
    import importlib
    from benchmarks.science import paper_tables as pt
    embedding = lambda cfg: config.agent_config(cfg).diffusion.time_embedding
    paper = [importlib.import_module("experiments.configs.d4rl_mujoco").get_config("hopper-medium-replay"),
             importlib.import_module("experiments.configs.d4rl_kitchen").get_config("partial"),
             importlib.import_module("experiments.configs.d4rl_antmaze").get_config("medium-play"),
             importlib.import_module("experiments.configs.pointmaze").get_config(),
             importlib.import_module("experiments.configs.robomimic").get_config("lift,unet")]
    datasets = pt.preset_datasets("offline", set(), 1000)
    jobs = [j for j in pt.jobs_for(datasets, pt.BUDGETS["offline"]) if j.agent not in ("bc", "bc_gmm")]
    paper += [pt.sweep_config(j, pt.BUDGETS["offline"]) for j in jobs]
    assert jobs and all(embedding(cfg) == "cleandiffuser" for cfg in paper)
    for name in ("quickstart", "toy2d", "pointmaze_rl"):
        assert embedding(importlib.import_module(f"experiments.configs.{name}").get_config()) == "float"
    cfg = importlib.import_module("experiments.configs.d4rl_mujoco").get_config("hopper-medium")
    cfg.agent_config.diffusion.time_embedding = "float"                  # one key flips it
    assert embedding(cfg) == "float"
    assert sweep.network_note(config.agent_config(cfg)).startswith("Denoiser time embedding: `float`")


def test_another_agent_on_the_command_line_keeps_what_the_file_changed():
    """The config holds the file agent's whole config; --config.agent=X takes X's defaults plus the fields the file
    (or the command line) changed from the file agent's defaults, and refuses a changed field X lacks."""
    from experiments.configs.pointmaze_rl import get_config
    cfg = get_config()                                              # EDP, with the file's and the library's values
    cfg.agent_config.weight_temperature, cfg.agent_config.diffusion.sampling_steps = 123.0, 7
    cfg.agent = "dql"
    dql = config.agent_config(cfg)
    assert (dql.agent, dql.weight_temperature, dql.diffusion.sampling_steps) == ("dql", 123.0, 7)
    assert dql.diffusion.prediction == "eps" and dql.diffusion.diffusion_steps == 10        # DQL's own defaults
    cfg.agent, cfg.gammas = "bc", (0.0,)
    with pytest.raises(ValueError, match="agent 'bc' has no config field"):
        config.agent_config(cfg)
