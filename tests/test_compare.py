"""compare.py's numbers can be trusted: metrics, bootstrap verdicts, collapse flags, the report."""
import json
import shutil

import numpy as np
import pytest
import torch

from data.obj import encode_image, write_obj
from evaluation.comparison import RunSpec, compare_runs, eval_set_from_obj
from training.config import TrainConfig
from training.checkpoint import save_checkpoint
from training.step import TrainingStep
from evaluation.metrics import (collapse_measures, count_spikes, is_collapsed, paired_bootstrap, per_sample_metrics,
                              ssim, stability_measures)
from utils.errors import UserError
from evaluation.report import write_report


def _glyph_batch(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    imgs = torch.ones(n, 1, size, size, dtype=torch.float64)
    for i in range(n):
        x, y = torch.randint(2, size // 2, (2,), generator=g).tolist()
        w, h = torch.randint(4, size // 2, (2,), generator=g).tolist()
        imgs[i, 0, y:y + h, x:x + w] = 0.1
    noise = torch.rand(imgs.shape, generator=g, dtype=torch.float64) * 0.2
    return (imgs - noise).clamp(0, 1)


def test_ssim_and_psnr_agree_with_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    a, b = _glyph_batch(seed=1), _glyph_batch(seed=2)
    ours = per_sample_metrics(a, b)
    for i in range(len(a)):
        x, y = a[i, 0].numpy(), b[i, 0].numpy()
        ref_ssim = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False)
        assert ours["ssim"][i].item() == pytest.approx(ref_ssim, abs=1e-6)
        assert ours["psnr"][i].item() == pytest.approx(peak_signal_noise_ratio(y, x, data_range=1.0), abs=1e-6)
    assert ssim(a, a).allclose(torch.ones(len(a), dtype=torch.float64))


def test_simple_metrics():
    real = torch.ones(2, 1, 16, 16, dtype=torch.float64)
    real[:, :, 2:6, 2:6] = 0
    fake = real.clone()
    fake[1, :, 2:6, 2:4] = 1  # half the ink missing
    m = per_sample_metrics(fake, real)
    assert m["l1"].tolist() == [0.0, 8 / 256]
    assert m["ink_iou"].tolist() == [1.0, 0.5]
    assert m["rmse"][1].item() == pytest.approx((8 / 256) ** 0.5)
    assert m["ssim"][0].item() == pytest.approx(1.0) and m["ssim"][1].item() < 1


def test_paired_bootstrap_verdicts():
    a = torch.linspace(0, 1, 50)
    same = paired_bootstrap(a, a.clone(), higher_is_better=True, names=("A", "B"))
    assert (same.mean, same.low, same.high, same.verdict) == (0.0, 0.0, 0.0, "no clear difference")
    assert paired_bootstrap(a, a + 0.1, True, ("A", "B")).verdict == "B better"
    assert paired_bootstrap(a, a + 0.1, False, ("A", "B")).verdict == "A better"
    noisy = a + torch.tensor([0.05, -0.05] * 25)
    assert paired_bootstrap(a, noisy, True).verdict == "no clear difference"


def test_constant_output_is_collapsed():
    real = _glyph_batch(12)
    labels = torch.tensor([0] * 6 + [1] * 6)
    healthy = collapse_measures(real.clone(), real, labels)
    assert healthy["diversity_ratio"] == pytest.approx(1.0) and not is_collapsed(healthy)
    constant = collapse_measures(torch.full_like(real, 0.9), real, labels)
    assert constant["diversity_ratio"] == 0 and constant["near_duplicate_rate"] == 1.0
    assert is_collapsed(constant)


def test_stability_measures(tiny_config):
    rows = [{"step": i, "d_loss": 1.0 + 0.01 * (i % 3), "g_loss": 10.0, "d_real_prob": 0.5, "d_fake_prob": 0.5,
             "g_grad_norm": 2.0, "d_grad_norm": 3.0} for i in range(1, 61)]
    rows[40]["d_loss"] = 50.0
    for r in rows[50:]:
        r["d_real_prob"], r["d_fake_prob"] = 0.999, 0.001
    s = stability_measures(rows)
    assert s["d_loss_spikes"] == 1 and s["g_loss_spikes"] == 0
    assert s["d_saturated_share"] == pytest.approx(10 / 60)
    assert s["g_grad_norm_median"] == 2.0 and s["d_grad_norm_max"] == 3.0
    assert count_spikes([1.0] * 30) == 0


# ----------------------------------------------------------- end to end on checkpoints

def _experiment(root, tiny_config, constant=False, seed=0):
    torch.manual_seed(seed)
    model = TrainingStep(tiny_config(embedding_num=2), TrainConfig())
    if constant:  # a generator whose output ignores its input: tanh of a constant bias
        up = model.netG.model.up[1]
        torch.nn.init.zeros_(up.weight)
        torch.nn.init.constant_(up.bias, 0.8)
    for step in (1, 2):
        model.step = step
        save_checkpoint(model, root / "checkpoint")
    logs = root / "logs"
    logs.mkdir(parents=True)
    (logs / "train.jsonl").write_text("".join(json.dumps({"step": s, "d_loss": 1.0, "g_loss": 5.0}) + "\n"
                                              for s in (1, 2)))
    return root


def _val_obj(path):
    rng = np.random.default_rng(0)
    records = []
    for ch in range(5):
        source = np.full((32, 32), 255, np.uint8)
        x = int(rng.integers(2, 16))
        source[4:28, x:x + 10] = 0
        for label in (0, 1):
            target = np.full((32, 32), 255, np.uint8)
            target[6 + 4 * label:26, x:x + 8 + 3 * label] = 0
            from PIL import Image
            pair = Image.fromarray(np.concatenate([target, source], axis=1))
            records.append((label, encode_image(pair, "PNG")))
    write_obj(path, records)
    return path


def test_run_compared_with_itself(tmp_path, tiny_config):
    exp = _experiment(tmp_path / "a", tiny_config)
    evalset = eval_set_from_obj(_val_obj(tmp_path / "val.obj"))
    assert len(evalset.groups) == 5  # each character found in both labels via its source half
    report = compare_runs([RunSpec("A", exp), RunSpec("B", exp)], evalset, "cpu", checkpoints=2)
    a, b = report.runs
    assert a.summary == b.summary and a.collapse == b.collapse
    assert all(d.verdict == "no clear difference" and d.mean == 0 for d in b.versus_first.values())
    assert [s["step"] for s in a.series] == [1, 2]
    files = write_report(report, evalset, tmp_path / "report")
    md = files["report.md"].read_text()
    assert "no clear difference" in md and "better" not in md.replace("(lower better)", "").replace(
        "(higher better)", "")
    html_text = files["report.html"].read_text()
    assert "data:image/png;base64," in html_text and "<table>" in html_text
    metrics = json.loads(files["metrics.json"].read_text())
    assert metrics["runs"][1]["versus_first"]["ssim"]["verdict"] == "no clear difference"
    from PIL import Image
    grid = Image.open(files["comparison_grid.png"])
    assert grid.width >= 4 * 32 and files["curves.png"].exists()


def test_every_report_scores_copying_the_source_first(tmp_path, tiny_config):
    from evaluation.metrics import per_sample_metrics, to_unit
    exp = _experiment(tmp_path / "a", tiny_config)
    evalset = eval_set_from_obj(_val_obj(tmp_path / "val.obj"))
    report = compare_runs([RunSpec("A", exp), RunSpec("B", exp)], evalset, "cpu", checkpoints=0, n_boot=200)
    copied = per_sample_metrics(to_unit(evalset.sources), to_unit(evalset.targets))
    for metric, values in copied.items():
        assert report.floor["overall"][metric] == pytest.approx(values.mean().item())
        for run in report.runs:   # the gain is the run's score minus the floor's, sample by sample
            gain = run.versus_floor[metric]
            assert gain.mean == pytest.approx(run.summary["overall"][metric] - values.mean().item(), abs=1e-6)
            assert gain.low <= gain.mean <= gain.high
    assert report.floor["by_label"].keys() == {0, 1}
    files = write_report(report, evalset, tmp_path / "report")
    md = files["report.md"].read_text()
    assert "| metric | copy the source | A | B |" in md
    assert f"| SSIM (higher better) | {report.floor['overall']['ssim']:.4g} |" in md
    assert "Gain over the floor" in md and "**SSIM over copy the source**" in md
    metrics = json.loads(files["metrics.json"].read_text())
    assert metrics["floor"]["name"] == "copy the source"
    assert metrics["runs"][0]["versus_floor"]["ssim"]["mean"] == pytest.approx(report.runs[0].versus_floor["ssim"].mean)


def test_validation_logs_the_floor_and_the_gain_over_it(tmp_path, tiny_config):
    from evaluation.metrics import held_out_record, per_sample_metrics, to_unit
    from training.validation import Validator
    validator = Validator(_val_obj(tmp_path / "val.obj"), count=10)
    fake = torch.zeros_like(validator.targets)
    record = held_out_record(fake, validator.targets, validator.labels, validator.floor)
    copied = per_sample_metrics(to_unit(validator.sources), to_unit(validator.targets))
    for metric in ("l1", "ssim", "ink_iou"):
        assert record[f"val_floor_{metric}"] == pytest.approx(copied[metric].mean().item())
    assert record["val_ssim_gain"] == pytest.approx(record["val_ssim"] - record["val_floor_ssim"])
    assert record["val_l1_gain"] == pytest.approx(record["val_floor_l1"] - record["val_l1"])   # lower L1 is a gain
    # the trivial answer itself gains nothing
    same = held_out_record(validator.sources, validator.targets, validator.labels, validator.floor)
    assert same["val_ssim_gain"] == pytest.approx(0, abs=1e-6) and same["val_l1_gain"] == pytest.approx(0, abs=1e-6)


def test_constant_generator_flagged(tmp_path, tiny_config):
    good, bad = _experiment(tmp_path / "good", tiny_config), _experiment(tmp_path / "bad", tiny_config, constant=True)
    evalset = eval_set_from_obj(_val_obj(tmp_path / "val.obj"))
    report = compare_runs([RunSpec("good", good), RunSpec("const", bad)], evalset, "cpu", checkpoints=0)
    good_r, bad_r = report.runs
    assert bad_r.collapsed and bad_r.collapse["diversity_ratio"] < 1e-6
    assert bad_r.collapse["label_sensitivity"] == 0
    # an untrained generator varies little too, but still more than a constant one
    assert good_r.collapse["diversity_ratio"] > 1e-3 and good_r.collapse["label_sensitivity"] > 0


def test_compare_input_errors(tmp_path, tiny_config):
    exp = _experiment(tmp_path / "a", tiny_config)
    with pytest.raises(UserError, match="no such experiment"):
        RunSpec.parse(str(tmp_path / "missing"))
    spec = RunSpec.parse(f"{exp}:2=mine")
    assert (spec.name, spec.step, spec.experiment_dir) == ("mine", "2", exp)
    evalset = eval_set_from_obj(_val_obj(tmp_path / "val.obj"))
    with pytest.raises(UserError, match="at least two"):
        compare_runs([spec], evalset, "cpu")
    with pytest.raises(UserError, match="names must differ"):
        compare_runs([spec, spec], evalset, "cpu")


@pytest.mark.slow
def test_eval_set_rendered_from_fonts_and_cli_errors(tmp_path, repo_root, tiny_config):
    import subprocess
    import sys
    from evaluation.comparison import eval_set_from_fonts
    fonts = repo_root / "fonts"
    evalset = eval_set_from_fonts(str(fonts / "NotoSansSC-Subset.otf"),
                                  {0: str(fonts / "NotoSerifSC-Subset.otf"), 1: str(fonts / "WenKai-Subset.ttf")},
                                  list("永和九年國"), 32)
    assert evalset.sources.shape == (8, 1, 32, 32) and evalset.labels.tolist() == [0] * 4 + [1] * 4
    assert len(evalset.groups) == 4 and evalset.chars[:4] == list("永和九年")  # 國 is not in the subsets
    exp = _experiment(tmp_path / "a", tiny_config)

    def cli(*args):
        return subprocess.run([sys.executable, str(repo_root / "compare.py"), "--run", f"{exp}=A", "--run", f"{exp}=B",
                               "--out_dir", str(tmp_path / "r"), "--device", "cpu", *args],
                              capture_output=True, text=True, cwd=repo_root)
    result = cli("--src_font", str(fonts / "NotoSansSC-Subset.otf"), "--dst_font", "serif.otf")
    assert result.returncode == 2 and "--dst_font expects LABEL=FONT" in result.stderr
    result = cli()
    assert result.returncode == 2 and "give the evaluation set as --val_obj" in result.stderr


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]
# Run in the page once it has loaded: what a reader's browser made of the report.
PROBE = """<script>window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.setAttribute('data-probe', JSON.stringify({
    images: images.length, loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    alts: images.map(i => i.alt), text: document.body.innerText,
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth}));
});</script>"""


def _in_browser(html_path, tmp_path, width, height):
    import html
    import re
    import subprocess
    probe = tmp_path / f"probe_{width}.html"
    probe.write_text(html_path.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                             f"--window-size={width},{height}", "--virtual-time-budget=10000", "--dump-dom",
                             probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert found, result.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's chromium); "
                                             "the report's browser check cannot run here")
def test_report_as_a_reader_sees_it_in_a_real_browser(tmp_path, tiny_config):
    import subprocess
    runs = [RunSpec(name, _experiment(tmp_path / name, tiny_config, seed=i)) for i, name in enumerate("ABC")]
    evalset = eval_set_from_obj(_val_obj(tmp_path / "val.obj"))
    report = compare_runs(runs, evalset, "cpu", checkpoints=2, n_boot=200)
    files = write_report(report, evalset, tmp_path / "report")
    page = _in_browser(files["report.html"], tmp_path, 1200, 1600)
    pictures = 1 + len(report.labels) + 1       # the grid, one per style, the curves
    assert page["images"] == pictures and page["loaded"] == pictures
    assert "Side by side source  target  runs" in page["alts"]
    for markdown_syntax in ("![", "](", "|---", "**"):
        assert markdown_syntax not in page["text"], markdown_syntax
    first_line = page["text"].splitlines()[1:3]
    import re
    verdict = re.compile(r"against A: B (better|worse|no clear difference) \(")
    assert any(verdict.search(line) for line in first_line)   # the verdicts come first
    phone = _in_browser(files["report.html"], tmp_path, 390, 844)
    assert phone["scrollWidth"] <= phone["innerWidth"] + 1   # tables scroll inside the page, not the page
    shot = tmp_path / "top.png"
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900",
                    f"--screenshot={shot}", files["report.html"].as_uri()], capture_output=True, timeout=120)
    from PIL import Image
    assert Image.open(shot).size == (1200, 900)
