"""Several processes (torchrun, DDP) train like one: data shards, losses, SN state, signals, resume."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from data.loader import BatchIterator, PairBank, PilBatches
from model import ModelConfig
from training.config import TrainConfig
from model.spectral import spectral_norm_layers
from training.step import TrainingStep
from utils.device import choose_device
from utils.distributed import Distributed, free_port
from utils.launcher import torchrun_command
from utils.errors import UserError

from conftest import wait_for_log_lines

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "zi2zi_pytorch_sample.obj"
STEPS = 3   # the 24 sample pairs make 3 global batches of 8
# Per-sample norms only (instance in G, none in D) and no dropout: a batch split over
# processes then computes exactly what the whole batch computes, up to float rounding.
EQUIVALENT = dict(input_nc=1, embedding_num=4, embedding_dim=16, ngf=8, ndf=8, image_size=64, norm_G="instance",
                  norm_D="none", use_dropout=False, sn_generator=True, sn_discriminator=True)


def shrink(batch, size=64):
    """The 256 px sample pairs at 64 px, so the networks stay tiny."""
    labels, source, target = batch
    resize = lambda x: torch.nn.functional.interpolate(x, size=(size, size), mode="area")  # noqa: E731
    return labels, resize(source), resize(target)


def train_steps(ctx: Distributed, obj: Path, config: dict, batch_size: int) -> dict:
    torch.manual_seed(0)
    model = TrainingStep(ModelConfig(**config), TrainConfig(), "cpu", dist=ctx)
    batches = BatchIterator(PairBank.from_obj(obj), batch_size, "cpu", augment=True, rotate=True, blur=True, seed=3,
                            rank=ctx.rank, world_size=ctx.world_size)
    source = batches.epoch(0)
    calls = {"all_reduce": 0, "broadcast": 0, "all_gather": 0}   # collectives the step makes itself (not DDP's)
    originals = {name: getattr(dist, name) for name in calls}

    def counted(name):
        def call(*args, **kwargs):
            calls[name] += 1
            return originals[name](*args, **kwargs)
        return call
    for name in calls:
        setattr(dist, name, counted(name))
    try:
        losses = [model.train_step(*shrink(next(source))) for _ in range(STEPS)]
    finally:
        for name, original in originals.items():
            setattr(dist, name, original)
    return {"losses": losses, "collectives": calls,
            "u": {name: m.weight_u.clone() for net in (model.netG, model.netD) for name, m in spectral_norm_layers(net)},
            "G": {k: v.clone() for k, v in model.netG.state_dict().items()},
            "D": {k: v.clone() for k, v in model.netD.state_dict().items()}}


def leave_group() -> None:
    """Wait for the other ranks, then leave: gloo on torch 2.3 can hang in destroy_process_group
    (its destructor joins a thread still talking to a rank that already left)."""
    dist.barrier()
    dist.destroy_process_group()


def _worker(rank: int, world: int, store: str, obj: str, config: dict, batch_size: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(train_steps(Distributed(rank, world, rank), Path(obj), config, batch_size), f"{out}.{rank}")
    finally:
        leave_group()


def run_processes(tmp_path: Path, obj: Path, config: dict, batch_size: int, world: int = 2) -> list[dict]:
    out = tmp_path / "result"
    mp.spawn(_worker, args=(world, str(tmp_path / "store"), str(obj), config, batch_size, str(out)), nprocs=world)
    return [torch.load(f"{out}.{rank}", weights_only=False) for rank in range(world)]


@pytest.mark.slow
def test_two_processes_with_half_batches_train_like_one_process(reference_dir, tmp_path):
    """2 processes x batch 4 = 1 process x batch 8, step for step.

    Tolerance: relative 1e-4 on d_loss, g_loss, l1_loss and category_loss over 3 steps,
    1e-3 on const_loss over the first 2. The runs differ only in the order float32 sums
    are taken (a gradient averaged over two halves vs summed over the whole batch; ~1e-7
    relative), and Adam's first steps move every weight by about +-lr whatever its
    gradient's size, so weights whose gradient is near zero move differently. Measured
    here (torch 2.3.1 and 2.14.1): at most 4e-5 on the four, 1.4e-4 on const_loss at
    step 1. const_loss is the distance of two nearly equal encodings and magnifies that
    rounding more each step (1e-2 at step 2 on torch 2.14.1), so its later steps are
    not compared. A process training on its half alone misses these bounds by orders
    of magnitude (const_loss 3e-1 and 4e-2, the others 1e-3 to 7e-2).
    """
    one = train_steps(Distributed(), reference_dir / SAMPLE, EQUIVALENT, 8)
    ranks = run_processes(tmp_path, reference_dir / SAMPLE, EQUIVALENT, 8)
    for rank in ranks:
        assert rank["losses"] == ranks[0]["losses"]   # every rank reports the same (averaged) numbers
        # statistics, buffers and the stop flag travel in one all-reduce per step
        assert rank["collectives"] == {"all_reduce": STEPS, "broadcast": 0, "all_gather": 0}
    for step, (a, b) in enumerate(zip(one["losses"], ranks[0]["losses"])):
        for key in ("d_loss", "g_loss", "l1_loss", "category_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (step, key)
        if step < 2:
            assert b["const_loss"] == pytest.approx(a["const_loss"], rel=1e-3), step
    for name, u in ranks[0]["u"].items():   # SN's power-iteration state is the same on every rank
        assert torch.equal(u, ranks[1]["u"][name]), name
    for key, w in ranks[0]["G"].items():
        assert torch.equal(w, ranks[1]["G"][key]), key


@pytest.mark.slow
def test_batchnorm_and_label_flips_train_under_ddp_with_identical_sn_state(reference_dir, tmp_path):
    """zi2zi's defaults (BatchNorm, dropout) with SN on both networks: the generator's two
    forward passes and D's frozen pass in G's step raise no DDP error on any torch (DDP's
    in-place buffer broadcast broke this before torch 2.12), and every buffer and weight
    ends identical across ranks: SN's u / v are rank 0's, BatchNorm's running statistics
    the mean of the ranks' (no --sync_bn), agreed once per step."""
    config = dict(EQUIVALENT, norm_G="batch", norm_D="batch", use_dropout=True)
    ranks = run_processes(tmp_path, reference_dir / SAMPLE, config, 8)
    for name, u in ranks[0]["u"].items():
        assert torch.equal(u, ranks[1]["u"][name]), name
    running = [k for k in ranks[0]["G"] if k.endswith("running_mean")]
    assert running and all(ranks[0]["G"][k].abs().sum() > 0 for k in running)   # BatchNorm did learn statistics
    for net in ("G", "D"):
        for key, w in ranks[0][net].items():
            assert torch.equal(w, ranks[1][net][key]), (net, key)


def test_shards_of_a_global_batch_are_the_one_process_batch(reference_dir):
    bank = PairBank.from_obj(reference_dir / SAMPLE)
    options = dict(augment=True, bold=True, rotate=True, blur=True, seed=5)
    whole = list(BatchIterator(bank, 8, "cpu", **options).epoch(1))
    shards = [list(BatchIterator(bank, 8, "cpu", rank=r, world_size=2, **options).epoch(1)) for r in range(2)]
    assert len(whole) == len(shards[0]) == len(shards[1]) == 3
    for i, batch in enumerate(whole):   # same pairs, same augmentation, split in two halves
        for part in range(3):
            assert torch.equal(batch[part], torch.cat([shards[0][i][part], shards[1][i][part]]))
    resumed = list(BatchIterator(bank, 8, "cpu", rank=1, world_size=2, **options).epoch(1, start_batch=2))
    assert all(torch.equal(a, b) for a, b in zip(resumed[0], shards[1][2]))


def test_pil_loader_shards_like_the_fast_one(reference_dir):
    obj = reference_dir / SAMPLE
    whole = list(PilBatches(obj, 8, "cpu", augment=False, seed=2).epoch(0))
    shards = [list(PilBatches(obj, 8, "cpu", augment=False, seed=2, rank=r, world_size=2).epoch(0)) for r in range(2)]
    fast = list(BatchIterator(PairBank.from_obj(obj), 8, "cpu", augment=False, seed=2).epoch(0))
    for i, batch in enumerate(whole):
        assert torch.equal(batch[0], fast[i][0])   # the same order as the fast loader
        for part in range(3):
            assert torch.equal(batch[part], torch.cat([shards[0][i][part], shards[1][i][part]]))


def test_global_batch_must_split_evenly_and_be_full(reference_dir):
    bank = PairBank.from_obj(reference_dir / SAMPLE)   # 24 pairs
    with pytest.raises(UserError, match="--batch_size 6 is the global batch.*multiple of 4"):
        BatchIterator(bank, 6, "cpu", world_size=4)
    with pytest.raises(UserError, match="24 pairs, fewer than --batch_size 32"):
        BatchIterator(bank, 32, "cpu", world_size=2)


def test_several_gpu_ids_print_the_torchrun_command(monkeypatch):
    from utils.device import gpu_ids_to_device
    monkeypatch.setattr(sys, "argv", ["train.py", "--experiment_dir", "exp", "--gpu_ids", "0,1", "--sn-discriminator"])
    with pytest.raises(UserError) as err:
        gpu_ids_to_device(["0,1"])
    assert ("CUDA_VISIBLE_DEVICES=0,1 torchrun --standalone --nproc_per_node 2 train.py --experiment_dir exp "
            "--sn-discriminator --device cuda") in str(err.value)
    assert torchrun_command([2, 3], ["train.py", "--gpu_ids", "2", "3", "--batch_size", "64"]) == (
        "CUDA_VISIBLE_DEVICES=2,3 torchrun --standalone --nproc_per_node 2 train.py --batch_size 64 --device cuda")


def test_each_process_takes_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    ctx = Distributed(rank=3, world_size=4, local_rank=1)   # second node, second process
    cuda = torch.device
    assert choose_device(None, None, ctx) == cuda("cuda:1") and choose_device("cuda", None, ctx) == cuda("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert choose_device(None, ("4,6",), ctx) == cuda("cuda:6")
    assert choose_device("cpu", None, ctx) == cuda("cpu")
    with pytest.raises(UserError, match="--device cuda:0 under torchrun"):
        choose_device("cuda:0", None, ctx)
    with pytest.raises(UserError, match="names 3 GPUs but torchrun started 2"):
        choose_device(None, ("0,1,2",), ctx)
    with pytest.raises(UserError, match="either --device or zi2zi's --gpu_ids"):
        choose_device("cuda", ("0,1",), ctx)


def test_sync_bn_takes_effect_or_says_why(tiny_config):
    from training.config import DeviceConfig
    device = DeviceConfig(sync_bn=True)
    with pytest.raises(UserError, match="neither network has BatchNorm"):
        device.check_sync_bn(torch.device("cuda"), tiny_config(norm_G="instance", norm_D="none"), 2)
    with pytest.raises(UserError, match="this is one process"):
        device.check_sync_bn(torch.device("cuda"), tiny_config(), 1)
    with pytest.raises(UserError, match="needs CUDA"):
        device.check_sync_bn(torch.device("cpu"), tiny_config(), 2)
    device.check_sync_bn(torch.device("cuda"), tiny_config(), 2)   # BatchNorm, CUDA, 2 processes: fine
    model = TrainingStep(tiny_config(), TrainConfig(), "cpu", sync_bn=True)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.netG.modules())


@pytest.mark.slow
def test_torchrun_trains_stops_on_sigterm_and_resumes_on_one_process(reference_dir, tmp_path, run_script):
    exp = tmp_path / "ddp"
    (exp / "data").mkdir(parents=True)
    (exp / "data" / "train.obj").write_bytes((reference_dir / SAMPLE).read_bytes())
    args = ["--experiment_dir", exp, "--embedding_num", 4, "--ngf", 8, "--ndf", 8, "--batch_size", 8,
            "--epoch", 100000, "--log_steps", 1, "--sample_steps", 1000, "--checkpoint_steps", 1000, "--device", "cpu",
            "--sn-discriminator", "--norm_D", "none"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.Popen([*torchrun, str(ROOT / "train.py"), *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = exp / "logs" / "train.jsonl"
    wait_for_log_lines(proc, log, 3, timeout=180)
    logged = log.read_text().count("\n")
    proc.send_signal(signal.SIGTERM)   # as a scheduler preempting the job: torchrun passes it on
    out, err = proc.communicate(timeout=180)
    assert "stopped by SIGTERM: checkpoint saved at step" in out, err
    assert (out + err).count("decoding train.obj once") == 1   # one process built the cache, the other mapped it
    steps = sorted(int(p.name.split("_")[0]) for p in (exp / "checkpoint").glob("*_state.pth"))
    assert len(steps) == 1 and steps[0] >= logged   # at most the step in flight when the signal came
    state = torch.load(exp / "checkpoint" / f"{steps[0]}_state.pth", weights_only=True)
    assert state["epoch"] * 3 + state["batches_done_in_epoch"] == state["step"]   # 24 pairs: 3 batches of 8
    rows = [line for line in log.read_text().splitlines() if '"event"' not in line]
    assert len(rows) == steps[0]   # rank 0 alone wrote the log: one line per step
    resumed = run_script("train.py", "--experiment_dir", exp, "--resume", "latest", "--max_steps", steps[0] + 2,
                         "--device", "cpu")
    assert f"resuming step {steps[0]}" in resumed.stdout and f"done at step {steps[0] + 2}" in resumed.stdout
    assert "decoding" not in resumed.stdout + resumed.stderr   # the cache was still good


def _sync_worker(rank: int, world: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        means, own = torch.tensor([float(rank), 2.0 * rank]), torch.tensor([10.0 + rank, float("nan") if rank else 0.0])
        stop = Distributed(rank, world, rank).synchronise([means], [own], flag=rank == 1)
        torch.save({"stop": stop, "means": means, "own": own}, f"{out}.{rank}")
    finally:
        leave_group()


@pytest.mark.slow
def test_one_collective_averages_takes_rank_0_s_buffers_and_spreads_a_stop(tmp_path):
    """Rank 1 alone got the stop signal: both ranks stop. Means are means; rank 0's buffers
    arrive bit for bit, and a NaN in another rank's copy does not reach them."""
    out = tmp_path / "result"
    mp.spawn(_sync_worker, args=(2, str(tmp_path / "store"), str(out)), nprocs=2)
    for rank in range(2):
        got = torch.load(f"{out}.{rank}")
        assert got["stop"] is True
        assert got["means"].tolist() == [0.5, 1.0]
        assert got["own"].tolist() == [10.0, 0.0]


def _listing_worker(rank: int, world: int, store: str, ckpt: str, out: str) -> None:
    """Rank 1 sees an older listing of the checkpoint folder (a stale cache on a shared file system)."""
    from model import checkpoint
    from training import start as start_module
    if rank == 1:
        real = checkpoint.Checkpoints.steps
        checkpoint.Checkpoints.steps = lambda self, complete=False: [s for s in real(self, complete) if s < 4]
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        ctx = Distributed(rank, world, rank)
        alone = start_module.decide_start({"resume": "latest"}, Path(ckpt)).step   # this rank's own view
        agreed = start_module.find_start({"resume": "latest"}, Path(ckpt), ctx, torch.device("cpu"))
        torch.save({"alone": alone, "agreed": agreed.step, "state_step": agreed.state.step}, f"{out}.{rank}")
    finally:
        leave_group()


@pytest.mark.slow
def test_every_rank_resumes_the_step_rank_0_chose(tiny_config, tmp_path):
    from training.checkpoint import save_checkpoint
    model = TrainingStep(tiny_config(), TrainConfig(), "cpu")
    for step in (2, 4):
        model.step = step
        save_checkpoint(model, tmp_path / "ckpt")
    out = tmp_path / "result"
    mp.spawn(_listing_worker, args=(2, str(tmp_path / "store"), str(tmp_path / "ckpt"), str(out)), nprocs=2)
    ranks = [torch.load(f"{out}.{r}") for r in range(2)]
    assert ranks[0]["alone"] == 4 and ranks[1]["alone"] == 2   # left alone, the ranks would disagree
    assert [r["agreed"] for r in ranks] == [4, 4] and [r["state_step"] for r in ranks] == [4, 4]


def _timeout_worker(rank: int, world: int, port: int, out: str) -> None:
    from utils.distributed import start
    from utils.failures import one_failure_message
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    ctx = Distributed(rank, world, rank)
    # The timeout bounds joining too: start both together, so a slow interpreter start-up cannot spend it
    Path(f"{out}.ready{rank}").touch()
    while not all(Path(f"{out}.ready{r}").exists() for r in range(world)):
        time.sleep(0.01)
    start(ctx, torch.device("cpu"), timeout_s=5)   # what train.py does with --dist_timeout 5
    if rank == 1:
        time.sleep(20)   # a rank that stopped answering
        return
    began = time.monotonic()
    try:
        with one_failure_message(ctx):
            ctx.synchronise([torch.zeros(3)], [], False)
        result = "no error"
    except UserError as err:
        result = str(err)
    torch.save({"message": result, "waited": time.monotonic() - began}, out)


@pytest.mark.slow
def test_a_collective_gives_up_after_the_timeout_with_one_line(tmp_path):
    out = tmp_path / "result"
    mp.spawn(_timeout_worker, args=(2, free_port(), str(out)), nprocs=2)
    result = torch.load(out)
    assert result["message"].startswith("rank 0 lost contact with the other processes of this job")
    assert "\n" not in result["message"] and "--dist_timeout" in result["message"]
    assert result["waited"] < 15   # the 5 s timeout ended it, not rank 1's return after 20 s


def test_dist_timeout_is_checked(tmp_path):
    from training.config import DeviceConfig, build_parser
    with pytest.raises(UserError, match="--dist_timeout is in seconds and must be > 0"):
        DeviceConfig(dist_timeout=0)
    args = build_parser("x").parse_args(["--experiment_dir", str(tmp_path), "--dist_timeout", "90"])
    assert args.dist_timeout == 90.0


def _launch(args: list, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _experiment(reference_dir: Path, tmp_path: Path) -> Path:
    exp = tmp_path / "exp"
    (exp / "data").mkdir(parents=True)
    (exp / "data" / "train.obj").write_bytes((reference_dir / SAMPLE).read_bytes())
    return exp


TRAIN_ARGS = ["--embedding_num", 4, "--ngf", 8, "--ndf", 8, "--batch_size", 8, "--log_steps", 1,
              "--sample_steps", 1000, "--device", "cpu"]   # zi2zi's BatchNorm in both networks


@pytest.mark.slow
def test_rank_0_failing_to_save_ends_every_rank_with_its_one_line(reference_dir, tmp_path, small_disk):
    exp = _experiment(reference_dir, tmp_path)
    ckpt = small_disk(tmp_path / "full", "64k")   # a real full disk: the first checkpoint does not fit
    began = time.monotonic()
    proc = _launch(["--standalone", "--nproc_per_node", 2, "train.py", "--experiment_dir", exp,
                    "--checkpoint_dir", ckpt, "--epoch", 100, "--checkpoint_steps", 2, *TRAIN_ARGS])
    out, err = proc.communicate(timeout=240)
    elapsed = time.monotonic() - began
    left = sorted(p.name for p in ckpt.iterdir())
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1, err   # a write the machine refused, as for one process
    assert lines[-1].startswith("error: rank 0: could not save checkpoint step 2 in "), err
    assert "No space left on device" in lines[-1] and "no checkpoint of this run was saved yet" in lines[-1]
    assert "Traceback" not in err and "ChildFailedError" not in err, err
    assert left == ["train.lock"]   # no part of the failed step's checkpoint, no temporary file (the lock stays)
    assert elapsed < 120, elapsed   # every rank ended: nothing waited for a collective timeout (1800 s)


def _fake_slurm(bin_dir: Path) -> Path:
    """srun that runs its command in place (one node), scontrol that names this host and records requeues."""
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\necho $$ > "$FAKE_SLURM/srun.pid"\nexec "$@"\n')
    (bin_dir / "scontrol").write_text('#!/bin/bash\nif [ "$1" = show ]; then echo localhost; '
                                      'else echo "$@" >> "$FAKE_SLURM/scontrol.log"; fi\n')
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    return bin_dir


@pytest.mark.slow
def test_slurm_script_saves_before_the_time_limit_requeues_and_resumes(reference_dir, tmp_path):
    """scripts/slurm_train.sbatch as SLURM runs it: SIGUSR1 to the batch shell (--signal=B:USR1@120)."""
    exp, fake = _experiment(reference_dir, tmp_path), tmp_path / "slurm"
    bin_dir = _fake_slurm(fake)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM": str(fake), "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": "1", "EXPERIMENT": str(exp), "GPUS_PER_NODE": "2", "PYTHON": sys.executable,
           "SLURM_JOB_ID": "4242", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "localhost",
           "SLURM_SUBMIT_DIR": str(ROOT), "MASTER_PORT": str(free_port())}
    script = ["bash", str(ROOT / "scripts" / "slurm_train.sbatch"), "--epoch", 100000, "--checkpoint_steps", 1000,
              *TRAIN_ARGS]
    batch = subprocess.Popen(list(map(str, script)), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    log = exp / "logs" / "train.jsonl"
    wait_for_log_lines(batch, log, 3, timeout=240)
    logged = log.read_text().count("\n")
    batch.send_signal(signal.SIGUSR1)   # what SLURM does 120 s before the limit
    out, err = batch.communicate(timeout=240)
    assert batch.returncode == 138, err   # 128 + SIGUSR1, as the README states
    assert "stopped by SIGUSR1: checkpoint saved at step" in out, err
    steps = sorted(int(p.name.split("_")[0]) for p in (exp / "checkpoint").glob("*_state.pth"))
    assert len(steps) == 1 and steps[0] >= logged   # the step in flight when the signal came, at most one on
    assert (fake / "scontrol.log").read_text().split() == ["requeue", "4242"]
    # the requeued job: the same script and arguments, now continuing the experiment
    env["MASTER_PORT"] = str(free_port())
    again = subprocess.run(list(map(str, script[:2] + ["--max_steps", steps[0] + 2] + script[2:])), cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming step {steps[0]}" in again.stdout and f"done at step {steps[0] + 2}" in again.stdout
