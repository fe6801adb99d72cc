"""The bottom floor: one atomic write, one list parser, generation that leaves the network as it was."""
import pytest
import torch

from model import build_generator
from model.inference import generate
from utils.cli import parse_int_list
from utils.errors import UserError
from utils.io import atomic_write, atomic_write_text


def test_atomic_write_replaces_whole_files_and_cleans_up_on_failure(tmp_path):
    path = tmp_path / "sub" / "f.json"
    atomic_write_text(path, "first")
    assert path.read_text() == "first"

    def fails_halfway(f):
        f.write(b"half of the second version")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, fails_halfway)
    assert path.read_text() == "first"              # the earlier version is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.json"]   # no temp file left behind


def test_parse_int_list():
    assert parse_int_list("2, 0,2,5", "--labels") == [2, 0, 5]
    for bad in ("a,1", "", " , "):
        with pytest.raises(UserError, match="--labels"):
            parse_int_list(bad, "--labels")


def test_generate_keeps_the_callers_network_state(tiny_config):
    net = build_generator(tiny_config(input_nc=3)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fake = generate(net, torch.rand(5, 1, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3, 0]), batch_size=2,
                    progress=False)
    assert fake.shape == (5, 3, 32, 32) and fake.device.type == "cpu"  # grayscale sources expanded
    assert net.training                              # handed back in train mode
    for k, v in net.state_dict().items():            # eval mode: BN statistics untouched
        assert torch.equal(v, before[k]), k
    assert all(p.is_contiguous() for p in net.parameters())  # memory format untouched
    again = generate(net, torch.rand(5, 1, 32, 32), torch.zeros(5, dtype=torch.long), progress=False)
    assert torch.isfinite(again).all()


def test_a_full_disk_inside_torch_save_surfaces_as_the_os_error(tmp_path):
    """torch.save's zip writer raises `RuntimeError: [enforce fail at inline_container.cc] ... unexpected pos`
    on a full disk, with the OSError chained inside; the write reports that OSError and leaves nothing."""
    def zip_writer_on_a_full_disk(f):
        f.write(b"part of an archive")
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 2115200 vs 2115092")
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write(tmp_path / "x.pth", zip_writer_on_a_full_disk)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="no OSError here"):   # other failures pass through unchanged
        atomic_write(tmp_path / "x.pth", lambda f: (_ for _ in ()).throw(RuntimeError("no OSError here")))


def test_launcher_ends_with_the_failing_rank_s_own_line():
    from types import SimpleNamespace

    from utils.launcher import describe_failure
    failure = lambda code, message: SimpleNamespace(exitcode=code, message=message, pid=7,  # noqa: E731
                                                    signal_name=lambda: "SIGKILL")
    assert describe_failure(0, failure(2, "rank 0: could not save")) == "rank 0: could not save"
    assert describe_failure(1, failure(2, "bad .obj")) == "rank 1: bad .obj"
    assert describe_failure(1, failure(-9, "")) == "rank 1 was killed by SIGKILL (pid 7)"
    assert describe_failure(0, failure(1, "To enable traceback see: https://...")) == \
        "rank 0 failed with exit status 1; its traceback is above"


def test_record_failure_writes_where_torchrun_reads(tmp_path, monkeypatch):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    from utils.launcher import failure_status, record_failure
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(tmp_path / "error.json"))
    record_failure("rank 0: could not save checkpoint step 2", 1)
    failure = ProcessFailure(local_rank=1, pid=1, exitcode=2, error_file=str(tmp_path / "error.json"))
    assert failure.message == "rank 0: could not save checkpoint step 2"
    assert failure_status(failure) == 1   # the status of the rank the message is from, not this one's 2


def _failure(tmp_path, rank: int, exitcode: int, timestamp: int, message: str | None = None, status: int = 0):
    """A ProcessFailure as torchrun builds it from a worker's error file (none when `message` is None)."""
    import json

    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure
    error_file = tmp_path / f"error_{rank}.json"
    if message is not None:
        error_file.write_text(json.dumps({"message": message, "timestamp": timestamp, "exit_status": status}))
    failure = ProcessFailure(local_rank=rank, pid=100 + rank, exitcode=exitcode, error_file=str(error_file))
    failure.timestamp = timestamp
    return failure


@pytest.mark.parametrize("rank_0_ends", ["first", "last, killed by the launcher"])
def test_the_launcher_s_status_is_that_of_the_rank_whose_line_it_prints(tmp_path, monkeypatch, capsys, rank_0_ends):
    """Rank 0 fails to save (status 1); rank 1's collective breaks and it exits 2, recording rank 0's line.
    Whichever ends first, launch.py prints rank 0's line and exits 1."""
    import torch.distributed.run
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    from utils.launcher import launch
    line = "rank 0: could not save checkpoint step 2 in ckpt (No space left on device)"
    if rank_0_ends == "first":
        failures = {0: _failure(tmp_path, 0, 1, 10, line, 1), 1: _failure(tmp_path, 1, 2, 11, line, 1)}
    else:   # rank 1 ended first; the launcher then stopped rank 0 before it could record anything
        failures = {1: _failure(tmp_path, 1, 2, 10, line, 1), 0: _failure(tmp_path, 0, -15, 11)}

    def failing_run(args):
        raise ChildFailedError("train.py", failures)
    monkeypatch.setattr(torch.distributed.run, "run", failing_run)
    assert launch(["--standalone", "--nproc_per_node", "2", "train.py"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {line}"


@pytest.mark.parametrize("flags, says", [(["--nproc_per_node", "0"], "--nproc_per_node must be at least 1, got 0"),
                                         (["--nproc_per_node", "many"], "Unsupported nproc_per_node value: many"),
                                         # torch's own reason here, where it gives one (2.3's assert has none)
                                         (["--nnodes", "0", "--nproc_per_node", "1"], "")])
def test_bad_torchrun_flags_are_one_line(flags, says, run_script):
    result = run_script("launch.py", *flags, "train.py", "--experiment_dir", "x", check=False)
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: launch.py: bad torchrun flags '{' '.join(flags)}'") and says in err


def test_every_experiment_path_comes_from_one_layout(tmp_path):
    from utils.experiment import Experiment
    exp = Experiment.at(tmp_path / "exp")
    root = tmp_path / "exp"
    assert (exp.data, exp.checkpoint, exp.sample, exp.logs) == (root / "data", root / "checkpoint", root / "sample",
                                                                root / "logs")
    assert (exp.train_obj, exp.val_obj, exp.split_file) == (root / "data" / "train.obj", root / "data" / "val.obj",
                                                            root / "data" / "split.json")
    assert (exp.train_log, exp.loss_plot, exp.tensorboard) == (root / "logs" / "train.jsonl",
                                                               root / "logs" / "losses.png", root / "logs" / "tensorboard")
    assert (exp.config_file, exp.lock_file) == (root / "config.json", root / "checkpoint" / "train.lock")
    assert (exp.infer_step(300), exp.font) == (root / "infer" / "300", root / "font")
    assert exp.sample_file(100) == root / "sample" / "step_0000100.png"
    assert exp.output_folders() == [exp.checkpoint, exp.sample, exp.logs]


def test_the_folder_flags_move_their_part_of_the_experiment(tmp_path):
    from argparse import Namespace
    from utils.experiment import Experiment
    moved = Experiment.at(tmp_path / "exp", data_dir=tmp_path / "shared", checkpoint_dir=tmp_path / "ckpt")
    assert (moved.train_obj, moved.lock_file) == (tmp_path / "shared" / "train.obj", tmp_path / "ckpt" / "train.lock")
    assert moved.sample == tmp_path / "exp" / "sample"
    # zi2zi's way: only a checkpoint folder; the experiment is the folder around it
    alone = Experiment.from_args(Namespace(experiment_dir=None, checkpoint_dir=str(tmp_path / "run" / "ckpt")))
    assert alone.root == tmp_path / "run" and alone.infer == tmp_path / "run" / "infer"
    with pytest.raises(UserError, match=r"^give --experiment_dir \(or --checkpoint_dir\)"):
        Experiment.from_args(Namespace(experiment_dir=None))
