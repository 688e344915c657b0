"""Every command of the README (and of the datasets pages), as written: CI runs the install, the quickstart and the test command (.ci/run); here
every other `python -m` command is run with --help appended, which loads its config file (with the overrides as
written) or parses its flags, and must succeed without an error line."""
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_commands(path: str = "README.md") -> list[str]:
    with open(os.path.join(ROOT, path)) as f:
        blocks = re.findall(r"```bash\n(.*?)```", f.read(), flags=re.S)
    lines = " ".join(blocks).replace("\\\n", " ").replace("\n", "\0").split("\0")
    commands = [line.split("&&")[-1].split("#")[0].strip() for line in lines]
    return [c for c in commands if c.startswith("python -m ") and not c.startswith("python -m pytest")]


def test_the_readme_opens_with_the_main_job_and_the_tests():
    with open(os.path.join(ROOT, "README.md")) as f:
        first = re.search(r"```bash\n(.*?)```", f.read(), flags=re.S).group(1).strip().splitlines()
    assert len(first) == 2 and first[1] == "python -m pytest tests"
    assert first[0].startswith("python3.11 -m venv .venv") and "experiments/configs/quickstart.py" in first[0]
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert "python -m pytest tests" in ci and "python -m experiments.sweep --config=experiments/configs/quickstart.py" in ci


# The datasets page's commands (D4RL's files on disk and downloaded) and the conversion of your own robosuite demos
DOC_COMMANDS = [c for c in readme_commands("docs/datasets.md") if "[" not in c] + [
    c for c in readme_commands("docs/robomimic.md") if "convert-robosuite" in c or "demo_low_dim" in c]


@pytest.mark.slow
@pytest.mark.parametrize("command", list(dict.fromkeys(readme_commands() + DOC_COMMANDS)))
def test_each_readme_command_parses_as_written(command, tmp_path):
    env = dict(os.environ, MINARI_DATASETS_PATH=str(tmp_path))
    proc = subprocess.run([sys.executable, *shlex.split(command)[1:], "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    helped = proc.returncode == 0 or (proc.returncode == 1 and "flags:" in proc.stdout)   # absl's --help exits 1
    assert helped and "error" not in proc.stderr.lower() and "Traceback" not in proc.stderr, proc.stderr[-2000:]
