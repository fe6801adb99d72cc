"""The real scripts, run as a user runs them, on tiny data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import wait_for_log_lines


pytestmark = pytest.mark.slow  # every test here runs the real scripts in subprocesses

ROOT = Path(__file__).resolve().parents[1]
FONTS = ROOT / "fonts"
SRC = FONTS / "NotoSansSC-Subset.otf"
TARGETS = [FONTS / "NotoSerifSC-Subset.otf", FONTS / "WenKai-Subset.ttf"]
CHARS = "永和九年岁在癸丑暮春之初会于稽山阴兰亭"




def one_line_error(result, pattern):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    import re
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, run_script):
    root = tmp_path_factory.mktemp("exp")
    charset = root / "chars.txt"
    charset.write_text(CHARS, encoding="utf-8")
    for label, target in enumerate(TARGETS):
        run_script("font2img.py", "--src_font", SRC, "--dst_font", target, "--charset", charset,
               "--label", label, "--canvas_size", 32, "--char_size", 32, "--sample_dir", root / "pairs")
    run_script("package.py", "--dir", root / "pairs", "--save_dir", root / "data", "--split_ratio", 0.2,
           "--split_by", "char")
    return root


def test_font2img_and_package_outputs(experiment):
    pairs = sorted((experiment / "pairs").glob("*.jpg"))
    assert len(pairs) == 2 * len(set(CHARS))
    assert Image.open(pairs[0]).size == (64, 32)
    split = json.loads((experiment / "data" / "split.json").read_text(encoding="utf-8"))
    assert split["train"] == {"0": 15, "1": 15} and split["val"] == {"0": 4, "1": 4}


def test_train_resume_infer_end_to_end(experiment, run_script):
    common = ["--experiment_dir", experiment, "--image_size", 32, "--ngf", 8, "--ndf", 8,
              "--embedding_num", 2, "--embedding_dim", 16, "--batch_size", 4, "--sample_steps", 2,
              "--checkpoint_steps", 2, "--log_steps", 1, "--device", "cpu"]
    run_script("train.py", *common, "--sn-generator", "--sn-discriminator", "--max_steps", 4)
    ckpt = experiment / "checkpoint"
    assert sorted(p.name for p in ckpt.glob("*_net_G.pth")) == ["2_net_G.pth", "4_net_G.pth"]
    result = run_script("train.py", "--experiment_dir", experiment, "--resume", "latest", "--max_steps", 6,
                    "--lr_D", 0.003, "--device", "cpu")
    assert "resuming step 4" in result.stdout and "--lr_D None -> 0.003" in result.stdout
    assert (ckpt / "6_net_G.pth").exists() and (ckpt / "6_state.pth").exists()
    state = torch.load(ckpt / "6_state.pth", weights_only=True)
    assert state["step"] == 6 and state["model_config"]["sn_generator"] is True
    rows = [json.loads(line) for line in (experiment / "logs" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_l1" not in r] == [1, 2, 3, 4, 5, 6]
    # held-out metrics with each checkpoint (the default --eval_steps), before and after the resume
    assert [r["step"] for r in rows if "val_l1" in r] == [2, 4, 6]
    log = [r for r in rows if "val_l1" not in r][-1]
    for key in ("d_loss", "g_loss", "l1_loss", "const_loss", "category_loss", "cheat_loss", "d_real_prob",
                "d_fake_prob", "lr_G", "lr_D", "g_grad_norm", "d_grad_norm", "img_per_s", "sigma_G", "sigma_D"):
        assert key in log, key
    assert Image.open(experiment / "sample" / "step_0000006.png").size[0] > 3 * 32
    rows = [r for r in rows if "val_l1" not in r]
    assert [r["lr_D"] for r in rows] == [0.001] * 4 + [0.003] * 2   # the new rate took effect at the resume
    assert all(r["lr_G"] == 0.001 for r in rows)
    config = json.loads((experiment / "config.json").read_text())
    assert config["train_config"]["lr_D"] == 0.003 and config["run_config"]["batch_size"] == 4  # kept from the run
    assert (experiment / "logs" / "losses.png").exists()
    config = json.loads((experiment / "config.json").read_text())
    assert config["model_config"]["image_size"] == 32 and config["start_step"] == 4

    # every Conv/ConvTranspose/Linear of both networks carries SN in the checkpoint
    from model import ModelConfig, build_discriminator, build_generator
    cfg = ModelConfig.from_dict(state["model_config"])
    for name, net in (("G", build_generator(ModelConfig(**{**cfg.to_dict(), "sn_generator": False}))),
                      ("D", build_discriminator(ModelConfig(**{**cfg.to_dict(), "sn_discriminator": False})))):
        keys = torch.load(ckpt / f"6_net_{name}.pth", weights_only=True).keys()
        layers = [n for n, m in net.named_modules()
                  if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
        assert layers and all(f"{n}.weight_orig" in keys and f"{n}.weight_u" in keys for n in layers)

    out = experiment / "infer_out"
    result = run_script("infer.py", "--experiment_dir", experiment, "--src_font", SRC, "--src_txt", "永和 九年國",
                    "--labels", "0,1", "--save_dir", out, "--device", "cpu")
    assert "lacks: 國" in result.stdout
    for label in (0, 1):
        files = sorted(p.name for p in (out / str(label)).glob("*.png"))
        assert files == ["U+4E5D_九.png", "U+548C_和.png", "U+5E74_年.png",
                         "U+6C38_永.png"]
        assert Image.open(out / str(label) / "U+6C38_永.png").size == (32, 32)
        assert (out / f"style_{label}.png").exists()
    obj_out = experiment / "infer_obj"
    run_script("infer.py", "--experiment_dir", experiment, "--obj_path", experiment / "data" / "val.obj",
           "--save_dir", obj_out, "--device", "cpu")
    assert len(list((obj_out / "0").glob("*.png"))) == 4

    # the SN run exported as plain weights (G and D) loads strictly in plain networks, same outputs
    run_script("infer.py", "--experiment_dir", experiment, "--export_plain", experiment / "plain")
    plain_config = ModelConfig(**{**cfg.to_dict(), "sn_generator": False, "sn_discriminator": False})
    plain_G, plain_D = build_generator(plain_config).eval(), build_discriminator(plain_config).eval()
    plain_G.load_state_dict(torch.load(experiment / "plain" / "6_net_G.pth", weights_only=True))
    plain_D.load_state_dict(torch.load(experiment / "plain" / "6_net_D.pth", weights_only=True))
    from model import load_generator
    from model.loading import load_weights
    sn_G, _, _ = load_generator(ckpt, 6)
    sn_D = build_discriminator(cfg).eval()
    load_weights(sn_D, ckpt / "6_net_D.pth", "D")
    x, labels = torch.rand(2, 1, 32, 32) * 2 - 1, torch.tensor([0, 1])
    with torch.no_grad():
        assert torch.allclose(plain_G(x.clone(), labels)[0], sn_G(x.clone(), labels)[0], atol=1e-5)
        pair = torch.cat([x, x.flip(2)], 1)
        assert torch.allclose(plain_D(pair)[0], sn_D(pair)[0], atol=1e-5)

    # a fresh start over existing checkpoints is refused; a contradicting flag on resume too
    one_line_error(run_script("train.py", *common, "--max_steps", 2, check=False), "already holds checkpoints")
    one_line_error(run_script("train.py", "--experiment_dir", experiment, "--resume", "latest", "--ngf", 16,
                          "--device", "cpu", check=False), "--ngf 16 contradicts")


def test_script_errors_are_one_line(experiment, tmp_path, run_script):
    one_line_error(run_script("font2img.py", "--src_font", tmp_path / "missing.ttf", "--dst_font", SRC,
                          "--sample_dir", tmp_path / "p", check=False), "--src_font .*missing.ttf")
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "none", "--device", "cpu", check=False),
                   "train.obj: no such .obj file; run package.py --save_dir")
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "e", "--data_dir", experiment / "data",
                          "--image_size", 32, "--embedding_num", 1, "--device", "cpu", check=False),
                   "train.obj has style label 1, outside 0..0: .*raise --embedding_num")
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "e", "--data_dir", experiment / "data",
                          "--device", "cpu", check=False), "32px glyphs but the model works on 256px; pass --image_size 32")
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "e", "--data_dir", experiment / "data",
                          "--image_size", 100, "--device", "cpu", check=False), "--image_size must be a power of two")
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "e", "--data_dir", experiment / "data",
                          "--image_size", 32, "--fine_tune", "7", "--device", "cpu", check=False),
                   "no record has a label in \\[7\\]")
    bad = tmp_path / "bad"
    bad.mkdir()
    data = (experiment / "data" / "train.obj").read_bytes()
    (bad / "train.obj").write_bytes(data[: len(data) // 2])
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "e2", "--data_dir", bad,
                          "--image_size", 32, "--device", "cpu", check=False), "train.obj: record \\d+ is truncated")
    one_line_error(run_script("infer.py", "--experiment_dir", tmp_path / "nothing", "--src_txt", "永",
                          "--src_font", SRC, "--label", 0, "--device", "cpu", check=False), "no checkpoint")
    one_line_error(run_script("package.py", "--dir", tmp_path, "--save_dir", tmp_path / "d", check=False),
                   "no paired images")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGUSR1"])
def test_ctrl_c_and_sigterm_save_a_consistent_checkpoint(experiment, tmp_path, sig, run_script):
    import signal
    exp = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
    args = ["--experiment_dir", exp, "--data_dir", experiment / "data", "--image_size", 32, "--ngf", 8, "--ndf", 8,
            "--embedding_num", 2, "--batch_size", 4, "--epoch", 100000, "--log_steps", 1, "--device", "cpu"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = exp / "logs" / "train.jsonl"
    wait_for_log_lines(proc, log, 3, timeout=120)
    signum = getattr(signal, sig)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"stopped by {sig}: checkpoint saved at step" in out and "Traceback" not in err
    steps = [int(p.name.split("_")[0]) for p in (exp / "checkpoint").glob("*_state.pth")]
    assert len(steps) == 1 and steps[0] >= 3
    state = torch.load(exp / "checkpoint" / f"{steps[0]}_state.pth", weights_only=True)
    batches_per_epoch = 30 // 4   # 30 training pairs, batch 4, the last short batch dropped
    assert state["epoch"] * batches_per_epoch + state["batches_done_in_epoch"] == state["step"]
    resumed = run_script("train.py", "--experiment_dir", exp, "--resume", "latest", "--max_steps", steps[0] + 1,
                     "--device", "cpu")
    assert f"resuming step {steps[0]}" in resumed.stdout


def test_validation_during_training_and_the_best_checkpoint(experiment, tmp_path, run_script):
    exp = tmp_path / "best"
    common = ["--data_dir", experiment / "data", "--device", "cpu"]
    run_script("train.py", "--experiment_dir", exp, *common, "--image_size", 32, "--ngf", 8, "--ndf", 8,
               "--embedding_num", 2, "--batch_size", 4, "--max_steps", 8, "--log_steps", 4, "--checkpoint_steps", 3,
               "--eval_steps", 2, "--eval_count", 6, "--keep_best", "l1", "--keep_last", 1,
               "--sn-discriminator", "--norm_D", "none")
    rows = [json.loads(line) for line in (exp / "logs" / "train.jsonl").read_text().splitlines()]
    val = {r["step"]: r for r in rows if "val_l1" in r}
    assert sorted(val) == [2, 4, 6, 8]
    for r in val.values():
        assert 0 < r["val_l1"] < 1 and -1 <= r["val_ssim"] <= 1 and 0 <= r["val_ink_iou"] <= 1
        assert {"val_rmse", "val_psnr", "val_diversity_ratio", "val_near_duplicate_rate", "val_seconds"} <= set(r)
    best = json.loads((exp / "checkpoint" / "best.json").read_text())
    best_step = min(val, key=lambda s: val[s]["val_l1"])
    assert best["step"] == best_step and best["value"] == val[best_step]["val_l1"] and best["metric"] == "l1"
    ckpt_steps = sorted(int(p.name.split("_")[0]) for p in (exp / "checkpoint").glob("*_state.pth"))
    assert ckpt_steps == sorted({best_step, 8})   # --keep_last 1 keeps the newest, and the best too
    # the same metrics as compare.py's report, from the same code
    report = tmp_path / "report"
    run_script("compare.py", "--run", f"{exp}:best=best", "--run", f"{exp}:latest=last", "--val_obj",
               experiment / "data" / "val.obj", "--out_dir", report, "--device", "cpu", "--checkpoints", 0)
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["runs"][0]["step"] == best_step
    out = run_script("infer.py", "--experiment_dir", exp, "--resume", "best", "--src_font", SRC, "--src_txt", "永",
                     "--label", 0, "--save_dir", tmp_path / "inf", "--device", "cpu")
    assert f"step {best_step}" in out.stdout
    resumed = run_script("train.py", "--experiment_dir", exp, "--resume", "best", "--max_steps", best_step + 1,
                         "--device", "cpu")
    assert f"resuming step {best_step}" in resumed.stdout
    no_val = tmp_path / "no_val"
    no_val.mkdir()
    (no_val / "train.obj").write_bytes((experiment / "data" / "train.obj").read_bytes())
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "e", "--data_dir", no_val, "--image_size", 32,
                              "--embedding_num", 2, "--keep_best", "ssim", "--device", "cpu", check=False),
                   "--keep_best needs held-out pairs, and .*val.obj is missing or empty")


def test_export_font_from_a_trained_experiment(experiment, tmp_path, run_script):
    exp = tmp_path / "font_exp"
    run_script("train.py", "--experiment_dir", exp, "--data_dir", experiment / "data", "--image_size", 32,
               "--ngf", 8, "--ndf", 8, "--embedding_num", 2, "--batch_size", 4, "--max_steps", 2, "--device", "cpu")
    result = run_script("export_font.py", "--experiment_dir", exp, "--data_dir", experiment / "data", "--label", 1,
                        "--src_font", SRC, "--device", "cpu", "--workers", 1, "--specimen", "永和九年")
    out = exp / "font" / "style_1.ttf"   # without --out: the experiment's font/ folder
    chars = set(CHARS)   # --charset data: every character of the training data
    from fontTools.ttLib import TTFont
    from export.build import SPACES
    assert {chr(c) for c in TTFont(str(out)).getBestCmap()} == chars | set(SPACES)   # and the spaces
    assert f"{len(chars)} characters ({len(chars)} generated" in result.stdout and "cmap holds exactly" in result.stdout
    assert out.with_suffix(".png").exists() and "specimen:" in result.stdout
    one_line_error(run_script("export_font.py", "--experiment_dir", exp, "--label", 5, "--src_font", SRC,
                              "--device", "cpu", check=False), "--label 5 is outside the checkpoint's labels 0..1")


def test_export_font_of_a_zi2zi_checkpoint_takes_the_norm_its_weights_leave_open(tmp_path, run_script):
    from model import ModelConfig, build_discriminator, build_generator
    from model.checkpoint import Checkpoints
    config = ModelConfig(image_size=32, ngf=8, ndf=8, embedding_num=2, embedding_dim=16, norm_G="instance",
                         norm_D="instance")
    files = Checkpoints(tmp_path / "exp" / "checkpoint").files(3)   # zi2zi-pytorch's files only: no state, no config
    files["G"].parent.mkdir(parents=True)
    torch.save(build_generator(config).state_dict(), files["G"])
    torch.save(build_discriminator(config).state_dict(), files["D"])
    (tmp_path / "chars.txt").write_text("永和九", encoding="utf-8")
    export = ("export_font.py", "--experiment_dir", tmp_path / "exp", "--label", 1, "--src_font", SRC, "--charset",
              tmp_path / "chars.txt", "--width_scale", 1, "--workers", 1, "--specimen", "", "--device", "cpu")
    one_line_error(run_script(*export, check=False), "pass --norm instance or --norm none")
    result = run_script(*export, "--norm", "instance")
    assert "3 characters (3 generated" in result.stdout
    assert (tmp_path / "exp" / "font" / "style_1.ttf").is_file()


def test_bench_writes_its_numbers(tmp_path, run_script):
    out = tmp_path / "bench.json"
    run_script("bench.py", "--device", "cpu", "--quick", "--steps", 1, "--skip", "pipeline", "data", "compiled",
               "--out", out)
    results = json.loads(out.read_text())
    assert results["machine"]["device"] == "cpu" and results["machine"]["cpu_cores"] >= 1
    # the CPU trains in fp32 at bench's CPU batch, 4
    assert set(results["train"]) == {"small b4 fp32 SN off", "small b4 fp32 SN D", "small b4 fp32 SN G+D"}
    assert all(r["img_per_s"] > 0 for r in results["train"].values())
    assert set(results["sn_cost"]["small b4 fp32"]) == {"D", "G+D"} and "anchor" not in results
    assert all(v > 0 for v in results["inference_chars_per_s"].values())


def test_data_memory_measures_each_process_and_the_shared_cache(tmp_path, run_script):
    out = tmp_path / "memory.json"
    result = run_script("scripts/data_memory.py", "--pairs", 300, "--processes", 1, 2, "--steps", 1,
                        "--batch_size", 2, "--num_workers", 0, "--work_dir", tmp_path, "--out", out,
                        "--model", "--ngf", 8, "--ndf", 8)
    (row,) = json.loads(out.read_text())["rows"]
    assert row["pairs"] == 300 and row["decoded_mib"] == pytest.approx(300 * 2 * 256 * 256 / 2 ** 20, rel=1e-3)
    assert row["cache_build_s"] > 0 and row["data_path_cold"]["pairs_per_s"] > 0
    for processes in (1, 2):
        train = row["train"][str(processes)]
        assert len(train["per_process_peak_rss_anon_mib"]) == processes   # the workers, not the launcher
        assert all(100 < mb < 4000 for mb in train["per_process_peak_rss_anon_mib"])
        assert 0 < train["page_cache_of_data_mib"] <= row["decoded_mib"]
    assert row["page_cache_after_epoch_mib"] == pytest.approx(row["decoded_mib"], rel=0.02)   # all of it, once
    assert "ratio" in result.stdout and list(tmp_path.iterdir()) == [out]   # its work folder is gone


def test_train_options_take_effect(experiment, tmp_path, run_script):
    exp = tmp_path / "options"
    run_script("train.py", "--experiment_dir", exp, "--data_dir", experiment / "data", "--image_size", 32,
           "--ngf", 8, "--ndf", 8, "--embedding_num", 2, "--batch_size", 4, "--max_steps", 2, "--loader", "pil",
           "--flip_labels", "--freeze_encoder", "--fine_tune", "1", "--inst_norm", "--lr_D", "0.004",
           "--g_steps", 1, "--amp", "bf16", "--channels_last", "--rotate", "--blur", "--bold", "--device", "cpu")
    config = json.loads((exp / "config.json").read_text())
    assert config["model_config"]["norm_G"] == config["model_config"]["norm_D"] == "instance" and config["device_config"]["amp"] == "bf16"
    run = config["run_config"]
    assert run["bold"] and run["rotate"] and run["blur"] and run["fine_tune"] == [1] and run["max_steps"] == 2
    assert config["train_config"]["flip_labels"] and config["train_config"]["freeze_encoder"]
    assert config["train_config"]["g_steps"] == 1 and config["data"]["labels"] == [1]
    assert config["data"]["train_pairs"] == 15  # only label 1
    rows = [json.loads(line) for line in (exp / "logs" / "train.jsonl").read_text().splitlines()]
    log = [r for r in rows if "val_l1" not in r][-1]
    assert log["lr_D"] == 0.004 and log["lr_G"] == 0.001
    state = torch.load(exp / "checkpoint" / "2_state.pth", weights_only=True)
    assert int(next(iter(state["optimizer_G"]["state"].values()))["step"]) == 2  # g_steps 1, 2 steps
    one_line_error(run_script("train.py", "--experiment_dir", tmp_path / "x", "--data_dir", experiment / "data",
                          "--inst_norm", "--norm", "batch", "--device", "cpu", check=False),
                   "--inst_norm contradicts --norm batch")


def test_gpu_check_rehearsal_runs_every_stage_in_order_on_the_cpu(tmp_path):
    """scripts/gpu_check.sh --rehearse: the GPU check's stages at CPU sizes, with the packages the GPU image
    lacks hidden, so the carried wheels (fetched from PyPI here) are what serves them; versions, then the
    bench (its JSON complete), then the tests, each within its cap."""
    wheels = tmp_path / "wheels"
    fetched = subprocess.run(["bash", str(ROOT / "scripts" / "fetch_gpu_wheels.sh")], cwd=ROOT,
                             env={**os.environ, "WHEEL_DIR": str(wheels), "PYTHON": sys.executable},
                             capture_output=True, text=True, timeout=300)
    assert fetched.returncode == 0, fetched.stderr
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "2", "WHEEL_DIR": str(wheels)}
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--rehearse"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stages = [line.split(":")[0] for line in (out / "steps.txt").read_text().splitlines()]
    assert stages == ["versions", "bench_cpu", "pytest_cpu", "pytest_compile_cpu"], stages   # no "note: missing"
    bench = json.loads((out / "bench_cpu.json").read_text())
    assert "errors" not in bench and bench["train"] and bench["compiled"] and bench["inference_chars_per_s"]
    assert " passed" in (out / "pytest_cpu.log").read_text() and "1 passed" in \
        (out / "pytest_compile_cpu.log").read_text()
    assert "torch " in (out / "versions.log").read_text()
