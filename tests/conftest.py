"""Shared fixtures: the reference files made by zi2zi-pytorch, tiny configs and batches, the device list."""
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Every device test runs on the CPU, and on CUDA too where a GPU is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Files made by running zi2zi-pytorch itself: the compatibility contract's fixtures."""
    return ROOT / "tests" / "reference"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


def _tiny_config(**overrides):
    from model import ModelConfig
    values = dict(input_nc=1, embedding_num=4, embedding_dim=16, ngf=8, ndf=8, image_size=32)
    values.update(overrides)
    return ModelConfig(**values)


def _tiny_batches(n: int, batch: int = 4, size: int = 32, embedding_num: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        labels = torch.randint(0, embedding_num, (batch,), generator=g)
        real_A = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
        real_B = torch.rand(batch, 1, size, size, generator=g) * 2 - 1
        out.append((labels, real_A, real_B))
    return out


def _run_script(name, *args, check=True):
    """Run one of the project's scripts as a user does; a failure shows its output."""
    import subprocess
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, str(ROOT / name), *map(str, args)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def run_script():
    """Factory: run_script("train.py", *args, check=True) -> CompletedProcess."""
    return _run_script


@pytest.fixture(scope="session")
def tiny_config():
    """Factory: a small ModelConfig (32 px, ngf = ndf = 8) with any field overridden."""
    return _tiny_config


@pytest.fixture(scope="session")
def tiny_batches():
    """Factory: n seeded random (labels, real_A, real_B) batches for the tiny config."""
    return _tiny_batches


@pytest.fixture(scope="session")
def bundled_font_data(tmp_path_factory):
    """train.obj / val.obj of the demo characters at 32 px: Noto Sans source, Noto Serif and WenKai targets."""
    from data.charsets import load_charset
    from data.packaging import package
    from data.pairs import font2font
    from data.render import Font, RenderSettings
    root = tmp_path_factory.mktemp("bundled")
    settings = RenderSettings(32, 32)
    chars = load_charset(str(ROOT / "fonts" / "charset_demo.txt"))[:400]
    src = Font(ROOT / "fonts" / "NotoSansSC-Subset.otf", 32)
    for label, target in enumerate(["NotoSerifSC-Subset.otf", "WenKai-Subset.ttf"]):
        font2font(src, Font(ROOT / "fonts" / target, 32), chars, settings, root / "pairs", label=label)
    package([root / "pairs"], root / "data", split_ratio=0.1, by="char")
    return root / "data"


@pytest.fixture
def small_disk():
    """Factory: small_disk(path, "64k") mounts a tmpfs of that size at `path` (a real full disk), unmounted
    after the test; the test is skipped, saying why, where mounting needs a root this process is not."""
    import subprocess
    mounted = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(path)
        return path
    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture(scope="session")
def tiny_trainer(bundled_font_data):
    """Factory: a CPU Trainer of the tiny model (batch 8, log every 5 steps, no samples) on the bundled
    fonts' data, in experiment folder `exp`; keyword arguments set RunConfig fields (`train=` TrainConfig's)."""
    def make(exp, **run):
        from model import ModelConfig
        from training.config import DeviceConfig, RunConfig, Settings, TrainConfig
        from training.loop import Trainer
        from training.step import TrainingStep
        from utils.experiment import Experiment
        run = {"batch_size": 8, "log_steps": 5, "sample_steps": 1000, **run}
        settings = Settings(ModelConfig(embedding_num=2, embedding_dim=16, ngf=8, ndf=8, image_size=32),
                            TrainConfig(**run.pop("train", {})), RunConfig(**run), DeviceConfig(device="cpu"))
        torch.manual_seed(0)
        model = TrainingStep(settings.model, settings.train, "cpu")
        return Trainer(model, settings, Experiment.at(exp, bundled_font_data))
    return make


def wait_for_log_lines(proc, log: Path, lines: int, timeout: float) -> int:
    """Wait until `log` has `lines` lines while `proc` runs; fails at once, with its output, if `proc` ends
    first (no polling a dead process until the timeout), and after `timeout` seconds. Returns the count."""
    import time
    deadline = time.time() + timeout
    while True:
        count = log.read_text().count("\n") if log.exists() else 0
        if count >= lines:
            return count
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (status {proc.returncode}) before {log} had {lines} lines:\n"
                        f"{out or ''}{err or ''}"[-3000:])
        if time.time() > deadline:
            pytest.fail(f"{log} had {count} of {lines} lines after {timeout} s")
        time.sleep(0.1)
