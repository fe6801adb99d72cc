"""Bad input and faults end in one clear line, and nothing already written is lost."""
import errno
import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch
from PIL import Image

from data.obj import ObjFormatError, encode_image, read_obj, write_obj
from model import load_generator
from model.checkpoint import available_steps
from training.checkpoint import save_checkpoint
from training.config import TrainConfig
from training.step import TrainingStep
from utils.errors import UserError

from conftest import wait_for_log_lines


def test_unwritable_checkpoint_folder_fails_before_the_first_step(tiny_trainer, tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "checkpoint").write_text("a file where the folder should be")
    trainer = tiny_trainer(exp, max_steps=5)
    with pytest.raises(UserError, match=r"cannot write to .*checkpoint"):
        trainer.run()
    assert trainer.model.step == 0


@pytest.mark.slow
def test_the_last_step_is_written_once_and_logs_survive_a_failed_final_save(tiny_trainer, tmp_path,
                                                                          monkeypatch):
    from training.checkpoint import TrainingState
    saved = []
    real = TrainingState.save
    monkeypatch.setattr(TrainingState, "save",
                        lambda state, *a, **k: (saved.append(state.step), real(state, *a, **k))[1])
    trainer = tiny_trainer(tmp_path / "a", max_steps=4, checkpoint_steps=2)
    trainer.run()
    assert saved == [2, 4]   # the final step was checkpointed by the loop, not again at shutdown

    def disk_full(state, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(TrainingState, "save", disk_full)
    trainer = tiny_trainer(tmp_path / "b", max_steps=5, checkpoint_steps=1000)
    with pytest.raises(UserError, match="could not save checkpoint step 5"):
        trainer.run()
    assert (tmp_path / "b" / "logs" / "losses.png").exists()   # the logs were closed and drawn anyway
    assert len((tmp_path / "b" / "logs" / "train.jsonl").read_text().splitlines()) == 1


def test_label_beyond_any_embedding_is_named_with_its_record(tmp_path):
    from PIL import Image
    pair = encode_image(Image.new("L", (64, 32), 255), "PNG")
    write_obj(tmp_path / "bad.obj", [(0, pair), (10**30, pair)])
    with pytest.raises(ObjFormatError, match=r"bad.obj: record 1: label 1000000000000000000000000000000 is out "
                                             r"of range"):
        read_obj(tmp_path / "bad.obj")


def test_finite_loss_explosion_stops_before_saving(tiny_trainer, tmp_path):
    from training.loop import RunDiverged
    from training.step import NonFiniteLossError
    exp = tmp_path / "exp"
    trainer = tiny_trainer(exp, max_steps=200, checkpoint_steps=1000, train={"lr": 1e6})
    with pytest.raises((RunDiverged, NonFiniteLossError), match="without saving these weights|before saving"):
        trainer.run()
    assert not available_steps(exp / "checkpoint")   # no garbage weights written


def test_divergence_guard_rule():
    from training.stats import DivergenceGuard
    guard = DivergenceGuard(factor=1000, window=100, warmup=20)
    for i in range(30):
        assert guard.check({"d_loss": 1.0 + 0.5 * (i % 2), "g_loss": 30.0 + i}) is None
    assert guard.check({"d_loss": 8.0, "g_loss": 300.0}) is None          # a spike, not a divergence
    message = guard.check({"d_loss": 1.2, "g_loss": 5e7})
    assert message and message.startswith("g_loss 5e+07 is over 1000x its median")
    fresh = DivergenceGuard(factor=1000)          # no history yet: the absolute limit still holds
    assert fresh.check({"d_loss": 2.0, "g_loss": 2.4e27}).startswith("g_loss 2.4e+27 is over 1e+08")
    assert DivergenceGuard(factor=0).check({"d_loss": 1e30, "g_loss": 1e30}) is None   # off


def test_font2img_errors_leave_nothing_behind(tmp_path, repo_root, monkeypatch):
    import font2img
    from fontkit import make_font
    src = make_font(tmp_path / "a.ttf", {"A": [(100, 100, 900, 900)]})
    dst = make_font(tmp_path / "b.ttf", {"B": [(100, 100, 900, 900)]})
    charset = tmp_path / "chars.txt"
    charset.write_text("AB")
    with pytest.raises(UserError, match="no pair was written"):
        font2img.main(["--src_font", str(src), "--dst_font", str(dst), "--charset", str(charset),
                       "--sample_dir", str(tmp_path / "pairs"), "--canvas_size", "32", "--char_size", "32"])
    assert not (tmp_path / "pairs").exists()
    for bad in (tmp_path / "missing.ttf", charset):
        with pytest.raises(UserError, match=f"--list_faces {bad}"):
            font2img.main(["--list_faces", str(bad)])


@pytest.mark.slow
def test_kill_9_then_resume_continues_bit_identically(bundled_font_data, tmp_path, repo_root):
    common = ["--data_dir", bundled_font_data, "--image_size", 32, "--ngf", 8, "--ndf", 8, "--embedding_num", 2,
              "--batch_size", 8, "--checkpoint_steps", 4, "--log_steps", 1, "--device", "cpu", "--no_augment"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def train(exp, *args):
        return subprocess.run([sys.executable, str(repo_root / "train.py"), "--experiment_dir", str(exp),
                               *map(str, common), *map(str, args)], cwd=repo_root, env=env, capture_output=True,
                              text=True, timeout=600)
    assert train(tmp_path / "straight", "--max_steps", 12).returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(repo_root / "train.py"), "--experiment_dir", str(killed),
                             *map(str, common), "--max_steps", "1000"], cwd=repo_root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = killed / "logs" / "train.jsonl"
    wait_for_log_lines(proc, log, 6, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_done = sum("val_l1" not in line for line in log.read_text().splitlines())   # training rows
    saved = available_steps(killed / "checkpoint", complete=True)
    assert saved and steps_done - saved[-1] <= 4                 # at most --checkpoint_steps lost
    result = train(killed, "--resume", "latest", "--max_steps", 12)
    assert result.returncode == 0, result.stderr
    for name in ("G", "D"):
        a = torch.load(tmp_path / "straight" / "checkpoint" / f"12_net_{name}.pth", weights_only=True)
        b = torch.load(killed / "checkpoint" / f"12_net_{name}.pth", weights_only=True)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows if "val_l1" not in r] == list(range(1, 13))
    assert [r["step"] for r in rows if "val_l1" in r] == [4, 8, 12]   # held-out metrics at each checkpoint


def test_a_style_name_file_with_a_blank_line_or_missing_is_named(tmp_path):
    from data.styles import read_style_names
    (tmp_path / "blank.txt").write_text("kai\n\nming\n")
    with pytest.raises(UserError, match="--type_file .*blank.txt: expected one style name per line"):
        read_style_names(tmp_path / "blank.txt", "--type_file")
    with pytest.raises(UserError, match="--type_file .*missing.txt: no such file"):
        read_style_names(tmp_path / "missing.txt", "--type_file")


def test_package_wants_dst_json_and_type_file_together_before_packing(tmp_path, repo_root):
    from data.packaging import package
    with pytest.raises(UserError, match="--dst_json and --type_file go together"):
        package([repo_root / "tests"], tmp_path / "d", dst_json=tmp_path / "f.json")
    assert not (tmp_path / "d").exists()


def test_resume_and_init_from_are_refused_together(tmp_path):
    from training.config import build_parser, given_flags
    from training.start import find_start
    flags = given_flags(build_parser("train").parse_args(["--experiment_dir", str(tmp_path), "--resume", "latest",
                                                          "--init_from", str(tmp_path)]))
    with pytest.raises(UserError, match="give --resume .* or --init_from .*, not both"):
        find_start(flags, tmp_path / "checkpoint")


def test_init_from_a_missing_folder_is_named(tmp_path):
    from training.start import parse_init_from
    with pytest.raises(UserError, match="--init_from .*nowhere: no such folder"):
        parse_init_from(str(tmp_path / "nowhere"))


def test_font2img_fonts2imgs_mode_needs_a_font_folder(tmp_path):
    import font2img
    with pytest.raises(UserError, match="--mode fonts2imgs needs --src_fonts_dir"):
        font2img.main(["--mode", "fonts2imgs", "--dst_imgs", str(tmp_path)])


def test_font2img_takes_a_source_font_or_a_folder_not_both(tmp_path):
    import font2img
    with pytest.raises(UserError, match="give --src_font or --src_fonts_dir, not both"):
        font2img.main(["--src_font", "a.ttf", "--src_fonts_dir", str(tmp_path), "--dst_font", "b.ttf",
                       "--sample_dir", str(tmp_path / "p")])


def test_infer_refuses_a_canvas_size_unlike_the_model_s(tmp_path, tiny_config, repo_root):
    import infer
    save_checkpoint(TrainingStep(tiny_config(), TrainConfig()), tmp_path / "exp" / "checkpoint")
    with pytest.raises(UserError, match="--canvas_size 64 differs from the checkpoint's image size 32"):
        infer.main(["--experiment_dir", str(tmp_path / "exp"), "--from_txt", "--src_font",
                    str(repo_root / "fonts" / "NotoSansSC-Subset.otf"), "--canvas_size", "64", "--device", "cpu"])


@pytest.mark.parametrize("script, args, flag", [
    ("infer.py", ["--experiment_dir", "{tmp}", "--save_dir", "{file}"], "--save_dir"),
    ("export_font.py", ["--experiment_dir", "{tmp}", "--src_font", "x.ttf", "--out", "{file}/style.ttf"], "--out"),
    ("export_font.py", ["--experiment_dir", "{tmp}", "--src_font", "x.ttf", "--out", "{tmp}"], "--out"),
    ("compare.py", ["--run", "a", "--run", "b", "--val_obj", "v.obj", "--out_dir", "{file}/report"], "--out_dir"),
    ("font2img.py", ["--src_font", "a.ttf", "--dst_font", "b.ttf", "--sample_dir", "{file}"], "--sample_dir"),
    ("package.py", ["--dir", "{tmp}", "--save_dir", "{file}"], "--save_dir"),
    ("package.py", ["--dir", "{tmp}", "--save_dir", "{tmp}/d", "--split_ratio", "0", "--save_obj_dir", "{tmp}"],
     "--save_obj_dir"),
    ("train.py", ["--experiment_dir", "{file}"], "--experiment_dir"),
    ("train.py", ["--experiment_dir", "{tmp}", "--checkpoint_dir", "{file}/ckpt"], "--checkpoint_dir"),
    ("bench.py", ["--out", "{tmp}"], "--out"),
])
def test_output_paths_are_checked_before_any_work(script, args, flag, tmp_path, repo_root):
    """A file where a folder goes, a folder where a file goes, a folder under a file: one line naming the flag."""
    import importlib
    file = tmp_path / "a_file"
    file.write_text("in the way")
    before = sorted(p.name for p in tmp_path.iterdir())
    module = importlib.import_module(script[:-3])
    argv = [a.format(tmp=tmp_path, file=file) for a in args]
    with pytest.raises(UserError) as err:
        module.main(argv)
    message = str(err.value)
    assert message.startswith(f"{flag} ") and "\n" not in message, message
    assert any(words in message for words in ("is a file, not a folder", "is a folder: name the file"))
    assert sorted(p.name for p in tmp_path.iterdir()) == before and file.read_text() == "in the way"


def test_package_refuses_pairs_of_two_sizes_naming_each(tmp_path):
    from PIL import Image
    from data.packaging import package
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for i in range(3):
        Image.new("L", (64, 32), 255).save(pairs / f"0_{i:04d}.jpg")
    for i in range(3, 5):
        Image.new("L", (128, 64), 255).save(pairs / f"0_{i:04d}.jpg")
    with pytest.raises(UserError) as err:
        package([pairs], tmp_path / "data")
    message = str(err.value)
    assert "\n" not in message and message.startswith("the pairs are of 2 sizes: ")
    assert f"3 of 64x32 (e.g. {pairs / '0_0000.jpg'}); 2 of 128x64 (e.g. {pairs / '0_0003.jpg'})" in message
    assert not (tmp_path / "data").exists()


def test_a_file_lock_is_exclusive_names_its_holder_and_dies_with_it(tmp_path, repo_root):
    from utils.locking import FileLock
    path = tmp_path / "x.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from utils.locking import FileLock\n"
                               "lock = FileLock(sys.argv[1]); assert lock.acquire(); print('held', flush=True)\n"
                               "time.sleep(600)", str(path)], cwd=repo_root, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = FileLock(path)
        assert not lock.acquire() and lock.holder.startswith(f"pid {holder.pid} on {os.uname().nodename} since ")
    finally:
        holder.kill()   # SIGKILL: no clean-up runs, the kernel drops the lock
        holder.wait()
    with FileLock(path) as lock:
        assert lock.acquire() and path.read_text().startswith(f"pid {os.getpid()} ")


@pytest.mark.slow
def test_a_second_run_on_a_running_experiment_exits_naming_the_holder(bundled_font_data, tmp_path, repo_root):
    exp = tmp_path / "exp"
    common = ["--experiment_dir", str(exp), "--data_dir", str(bundled_font_data), "--image_size", "32", "--ngf", "8",
              "--ndf", "8", "--embedding_num", "2", "--batch_size", "8", "--log_steps", "1", "--device", "cpu"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "train.py", *common, "--max_steps", "100000", "--checkpoint_steps", "2"],
                             cwd=repo_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        log = exp / "logs" / "train.jsonl"
        wait_for_log_lines(first, log, 3, timeout=300)
        config = (exp / "config.json").read_bytes()
        second = subprocess.run([sys.executable, "train.py", *common, "--resume", "latest"], cwd=repo_root, env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode != 0 and first.poll() is None
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {exp / 'checkpoint'} is in use by another training "
                                                       f"run (pid {first.pid} on {os.uname().nodename} since ")
        assert (exp / "config.json").read_bytes() == config   # the second run wrote nothing
    finally:
        first.kill()   # kill -9: the lock must not outlive it
        first.wait()
    last = available_steps(exp / "checkpoint", complete=True)[-1]
    third = subprocess.run([sys.executable, "train.py", *common, "--resume", "latest", "--max_steps", str(last + 2)],
                           cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert f"resuming step {last}" in third.stdout and f"done at step {last + 2}" in third.stdout


# ---------------------------------------------------------------- a real full disk
TRAIN_32PX = ["--image_size", "32", "--ngf", "8", "--ndf", "8", "--embedding_num", "2", "--batch_size", "8",
              "--device", "cpu"]


def _script(repo_root, name, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, name, *map(str, args)], cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=600)


def _write_error(result) -> str:
    """The run's one error line, after checking it ended the way a refused write should: status 1, no traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    return errors[0]


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or ".building-" in p.name)


@pytest.mark.slow
def test_a_real_full_disk_during_a_checkpoint_is_one_line_and_resume_continues(bundled_font_data, tmp_path,
                                                                             repo_root, small_disk):
    """A checkpoint of these settings is 5.6 MB: an 8 MB disk takes step 1's and fills up in step 2's, where
    torch's zip writer raises its RuntimeError rather than the OSError."""
    exp = small_disk(tmp_path / "exp", "8m")
    common = ["--experiment_dir", exp, "--data_dir", bundled_font_data, *TRAIN_32PX, "--checkpoint_steps", 1]
    line = _write_error(_script(repo_root, "train.py", *common, "--max_steps", 5))
    assert line.startswith(f"error: could not save checkpoint step 2 in {exp / 'checkpoint'} (No space left on "
                           f"device; free space there or write elsewhere); the last good checkpoint is step 1 (1 steps "
                           f"ago), earlier checkpoints are intact. Then --resume latest"), line
    ckpt = exp / "checkpoint"
    assert sorted(p.name for p in ckpt.iterdir()) == ["1_net_D.pth", "1_net_G.pth", "1_state.pth", "train.lock"]
    assert _leftovers(exp) == []
    subprocess.run(["mount", "-o", "remount,size=64m", str(exp)], check=True)   # the user frees space
    resumed = _script(repo_root, "train.py", *common, "--resume", "latest", "--max_steps", 3)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming step 1" in resumed.stdout and "done at step 3" in resumed.stdout
    assert available_steps(ckpt, complete=True) == [1, 2, 3]


@pytest.mark.slow
def test_a_full_disk_under_samples_and_logs_keeps_everything_written_before(bundled_font_data, tmp_path,
                                                                          repo_root, small_disk):
    exp = small_disk(tmp_path / "exp", "96k")   # checkpoints elsewhere: the samples and logs fill this disk
    result = _script(repo_root, "train.py", "--experiment_dir", exp, "--checkpoint_dir", tmp_path / "ckpt",
                     "--data_dir", bundled_font_data, *TRAIN_32PX, "--checkpoint_steps", 2, "--sample_steps", 1,
                     "--log_steps", 1, "--max_steps", 50)
    line = _write_error(result)
    assert re.match(rf"error: could not write {re.escape(str(exp))}/\S+ at step \d+ \(No space left on device; "
                    r"free space there or write elsewhere\); the last good checkpoint is step \d+", line), line
    assert _leftovers(exp) == []
    for png in (exp / "sample").glob("*.png"):   # every sample there is whole
        with Image.open(png) as img:
            img.load()
    rows = (exp / "logs" / "train.jsonl").read_bytes().decode().splitlines(keepends=True)
    assert rows and all(row.endswith("\n") for row in rows)   # no line cut short by the full disk
    steps = [json.loads(row)["step"] for row in rows]
    assert steps == sorted(steps) and steps[0] == 1
    json.loads((exp / "config.json").read_text())


def _fill(path):
    """Write `path` until its disk is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as err:
            assert err.errno == errno.ENOSPC


@pytest.fixture(scope="module")
def trained(tiny_trainer, tmp_path_factory):
    exp = tmp_path_factory.mktemp("trained") / "exp"
    tiny_trainer(exp, max_steps=2).run()
    return exp


@pytest.mark.slow
@pytest.mark.parametrize("script, args, output", [
    ("export_font.py", ["--label", 1, "--src_font", "fonts/NotoSansSC-Subset.otf", "--charset", "{chars}",
                        "--out", "{disk}/style.ttf", "--workers", 1, "--specimen", "永和九年"], "style.ttf"),
    ("infer.py", ["--from_txt", "--src_font", "fonts/NotoSansSC-Subset.otf", "--src_txt", "永和九年" * 40,
                  "--label", 1, "--save_dir", "{disk}"], "style_1.png"),
    ("compare.py", ["--run", "{exp}=A", "--run", "{exp}=B", "--val_obj", "{data}/val.obj", "--out_dir", "{disk}"],
     "report.md"),
], ids=["export_font", "infer", "compare"])
def test_a_full_disk_under_a_script_s_outputs_keeps_the_earlier_ones(script, args, output, trained,
                                                                    bundled_font_data, tmp_path, repo_root,
                                                                    small_disk):
    disk = small_disk(tmp_path / "disk", "256k")
    earlier = os.urandom(40_000)   # the previous run's output, which the new one would replace
    (disk / output).write_bytes(earlier)
    _fill(disk / "filler")
    chars = tmp_path / "chars.txt"
    chars.write_text("永和九年歲在癸丑", encoding="utf-8")
    argv = [str(a).format(disk=disk, chars=chars, exp=trained, data=bundled_font_data) for a in args]
    extra = [] if script == "compare.py" else ["--experiment_dir", trained]
    line = _write_error(_script(repo_root, script, *extra, *argv, "--device", "cpu"))
    assert line.startswith(f"error: could not write {disk}/") and "(No space left on device; free space" in line, line
    assert (disk / output).read_bytes() == earlier
    assert _leftovers(disk) == []


@pytest.mark.parametrize("name", ["beta1", "beta2"])
def test_adam_betas_outside_0_to_1_are_refused(name):
    with pytest.raises(UserError, match=rf"^--{name} must be in \[0, 1\); got 1.0$"):
        TrainConfig(**{name: 1.0})


def test_width_scale_outside_its_range_is_refused_and_inside_taken_as_given(tmp_path):
    from export_font import choose_width_scale
    with pytest.raises(UserError, match=r"^--width_scale must be between 0.25 and 4 .*; got 5.0$"):
        choose_width_scale(5.0, tmp_path / "train.obj", 0)
    assert choose_width_scale(0.8, tmp_path / "train.obj", 0) == 0.8


@pytest.fixture
def study_without_checkpoints(tmp_path):
    study = tmp_path / "study"
    for name in ("A__plain_s1", "A__snD_s1"):
        (study / "runs" / name / "logs").mkdir(parents=True)
        (study / "runs" / name / "logs" / "train.jsonl").write_text('{"step": 1}\n')
    return study


def test_a_study_folder_must_be_the_only_run(study_without_checkpoints, tmp_path):
    from compare import runs_to_compare
    study = study_without_checkpoints
    with pytest.raises(UserError, match=rf"^--run {study} is a study folder: give it as the only --run"):
        runs_to_compare([str(study), str(tmp_path)])


def test_a_study_needs_two_runs_with_a_checkpoint(study_without_checkpoints):
    from compare import runs_to_compare
    study = study_without_checkpoints
    with pytest.raises(UserError, match=rf"^{study}: 0 of its 2 runs have a checkpoint; a comparison needs two$"):
        runs_to_compare([str(study)])


def test_failed_save_keeps_earlier_checkpoints_and_leaves_no_temp_file(tiny_trainer, tmp_path, monkeypatch):
    exp = tmp_path / "exp"
    trainer = tiny_trainer(exp, max_steps=9, checkpoint_steps=3)
    real_save = torch.save

    def disk_full_at_step_6(obj, f, *args, **kwargs):
        if trainer.model.step == 6:
            f.write(b"partial")
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)
    monkeypatch.setattr(torch, "save", disk_full_at_step_6)
    with pytest.raises(UserError, match=r"could not save checkpoint step 6 in .*\(No space left on device; free space there or write elsewhere\); "
                                        r"the last good checkpoint is step 3 \(3 steps ago\)"):
        trainer.run()
    ckpt = exp / "checkpoint"
    assert available_steps(ckpt, complete=True) == [3] and not list(ckpt.glob("*.tmp"))
    load_generator(ckpt, 3)  # still loads


def test_a_nan_between_log_steps_still_saves_no_weights(tiny_trainer, tmp_path):
    """The statistics are read every --log_steps, and before every checkpoint: a NaN at step 2 (not a log
    step) ends the run at the checkpoint of step 3, naming step 2, with nothing saved."""
    from training.step import NonFiniteLossError
    exp = tmp_path / "exp"
    trainer = tiny_trainer(exp, max_steps=20, log_steps=10, checkpoint_steps=3, eval_steps=0)
    model, step_on_device = trainer.model, trainer.model.step_on_device

    def poisoned(*args, **kwargs):
        if model.step == 1:   # the second step's losses become NaN
            with torch.no_grad():
                next(model.netD.parameters()).fill_(float("nan"))
        return step_on_device(*args, **kwargs)
    model.step_on_device = poisoned
    with pytest.raises(NonFiniteLossError, match="at step 2 .*before saving these weights"):
        trainer.run()
    assert model.step == 3   # the run went on to the checkpoint's read, not beyond
    assert not available_steps(exp / "checkpoint")


def test_init_from_takes_the_best_checkpoint_of_a_run(tmp_path):
    import torch

    from model.checkpoint import Checkpoints
    from training.start import parse_init_from
    ckpt = tmp_path / "base" / "checkpoint"
    ckpt.mkdir(parents=True)
    for step in (10, 20):
        for net in "GD":
            torch.save({}, ckpt / f"{step}_net_{net}.pth")
    with pytest.raises(UserError, match="no best.json .* --keep_best"):
        parse_init_from(f"{tmp_path / 'base'}:best")
    Checkpoints(ckpt).write_best(10, "ssim", 0.5, True)
    assert parse_init_from(f"{tmp_path / 'base'}:best") == (ckpt, 10)
    assert parse_init_from(f"{tmp_path / 'base'}:latest") == (ckpt, 20)
    assert parse_init_from(str(tmp_path / "base")) == (ckpt, 20)


def test_a_missing_train_obj_names_the_file_and_the_command_that_makes_it(tiny_trainer, tmp_path):
    from training.loop import Trainer
    from utils.experiment import Experiment
    made = tiny_trainer(tmp_path / "exp", max_steps=1)
    with pytest.raises(UserError, match=r"nodata/train.obj: no such .obj file; run package.py --save_dir .*nodata "
                                        r"first, or point --data_dir"):
        Trainer(made.model, made.settings, Experiment.at(tmp_path / "other", tmp_path / "nodata"))
