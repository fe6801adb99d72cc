"""zi2zi-pytorch's commands, checkpoints and outputs work here as they are."""
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from utils.errors import UserError

pytestmark = pytest.mark.slow  # the real scripts, in subprocesses

ROOT = Path(__file__).resolve().parents[1]
FONTS = ROOT / "fonts"




def test_zi2zi_pytorch_readme_commands_run_as_they_are(tmp_path, run_script):
    """Its README's commands, with only paths and sizes changed (and --gpu_ids only where CUDA exists)."""
    charset = tmp_path / "charset.txt"
    charset.write_text((FONTS / "charset_demo.txt").read_text(encoding="utf-8")[:60], encoding="utf-8")
    for label, dst in enumerate(["NotoSerifSC-Subset.otf", "WenKai-Subset.ttf"]):
        run_script("font2img.py", f"--src_font={FONTS / 'NotoSansSC-Subset.otf'}", f"--dst_font={FONTS / dst}",
            f"--charset={charset}", "--sample_count=40", f"--sample_dir={tmp_path / 'dir'}", f"--label={label}",
            "--filter", "--shuffle", "--mode=font2font", "--canvas_size=32", "--char_size=32")
    run_script("package.py", f"--dir={tmp_path / 'dir'}", f"--save_dir={tmp_path / 'experiment' / 'data'}",
        "--split_ratio=0.1")
    gpu = ["--gpu_ids=cuda:0"] if torch.cuda.is_available() else []
    run_script("train.py", f"--experiment_dir={tmp_path / 'experiment'}", *gpu, "--batch_size=8", "--epoch=1",
        "--sample_steps=5", "--checkpoint_steps=5", "--image_size=32")
    step = max(int(p.name.split("_")[0]) for p in (tmp_path / "experiment" / "checkpoint").glob("*_net_G.pth"))
    gpu = ["--gpu_ids", "cuda:0"] if torch.cuda.is_available() else []
    exp = tmp_path / "experiment"
    run_script("infer.py", "--experiment_dir", exp, "--batch_size", 32, *gpu, "--resume", step, "--obj_path",
        exp / "data" / "val.obj", "--layout", "zi2zi")
    assert Image.open(exp / "infer" / "0" / "0.png").size == (64, 32)   # generated | target, as zi2zi
    run_script("infer.py", "--experiment_dir", exp, *gpu, "--batch_size", 32, "--resume", step, "--from_txt",
        "--src_font", FONTS / "NotoSansSC-Subset.otf", "--src_txt", "大威天龙大罗法咒世尊地藏波若诸佛", "--label", 3)
    run_script("infer.py", "--experiment_dir", exp, *gpu, "--batch_size", 32, "--resume", step, "--from_txt",
        "--src_font", FONTS / "NotoSansSC-Subset.otf", "--src_txt", "大威天龙大罗法咒世尊地藏波若诸佛", "--run_all_label",
        "--layout", "zi2zi", "--type_file", _type_file(tmp_path, 40))
    assert (exp / "infer" / "infer_style39_construct.png").exists() and (exp / "infer" / "39" / "0.png").exists()
    if not torch.cuda.is_available():
        result = run_script("train.py", f"--experiment_dir={tmp_path / 'experiment2'}", "--gpu_ids=cuda:0",
                     "--image_size=32", f"--data_dir={exp / 'data'}", check=False)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and "Traceback" not in result.stderr and len(errors) == 1
        assert "CUDA is not available on this machine" in errors[0]


def _type_file(tmp_path, n):
    path = tmp_path / "types.txt"
    path.write_text("".join(f"style{i}\n" for i in range(n)), encoding="utf-8")
    return path


@pytest.fixture
def zi2zi_checkpoint(tmp_path, reference_dir):
    """zi2zi-pytorch's own weights (no state file) at step 100, and 256 px data that fits them."""
    ckpt = tmp_path / "pretrained" / "checkpoint"
    ckpt.mkdir(parents=True)
    shutil.copy(reference_dir / "zi2zi_pytorch_ref_net_G.pth", ckpt / "100_net_G.pth")
    shutil.copy(reference_dir / "zi2zi_pytorch_ref_net_D.pth", ckpt / "100_net_D.pth")
    data = tmp_path / "pretrained" / "data"
    data.mkdir()
    shutil.copy(reference_dir / "zi2zi_pytorch_sample.obj", data / "train.obj")
    return tmp_path / "pretrained"


def test_zi2zi_checkpoint_is_fine_tuned_by_resume(zi2zi_checkpoint, reference_dir, run_script):
    from training.config import build_parser, given_flags, resolve_settings
    from training.start import apply_start, find_start
    from training.step import TrainingStep
    ref = torch.load(reference_dir / "zi2zi_pytorch_ref_io.pth", weights_only=True)
    flags = given_flags(build_parser("train").parse_args(["--experiment_dir", str(zi2zi_checkpoint), "--resume",
                                                          "100"]))
    start = find_start(flags, zi2zi_checkpoint / "checkpoint")
    settings = resolve_settings(flags, start)
    assert start.kind == "weights" and settings.model.embedding_num == 4 and settings.model.ngf == 8
    model = TrainingStep(settings.model, settings.train)
    apply_start(model, start)
    assert model.step == 100
    fake = model.generate(ref["x"], ref["labels"])   # the first step's G, before any update
    assert torch.allclose(fake, ref["fake_B"], atol=1e-5)
    result = run_script("train.py", "--experiment_dir", zi2zi_checkpoint, "--resume", 100, "--max_steps", 102,
                 "--batch_size", 8, "--device", "cpu")
    assert "fine-tuning from step 100" in result.stdout and "not restored: optimiser state" in result.stdout
    state = torch.load(zi2zi_checkpoint / "checkpoint" / "102_state.pth", weights_only=True)
    assert state["step"] == 102 and state["model_config"]["embedding_num"] == 4


def test_init_from_zi2zi_weights_starts_from_their_exact_outputs(zi2zi_checkpoint, tmp_path, reference_dir):
    from training.config import build_parser, given_flags, resolve_settings
    from training.start import apply_start, find_start
    from training.step import TrainingStep
    ref = torch.load(reference_dir / "zi2zi_pytorch_ref_io.pth", weights_only=True)
    flags = given_flags(build_parser("train").parse_args(["--experiment_dir", str(tmp_path / "new"), "--init_from",
                                                          f"{zi2zi_checkpoint}:100"]))
    start = find_start(flags, tmp_path / "new" / "checkpoint")
    assert start.kind == "init_from" and start.source_step == 100
    settings = resolve_settings(flags, start)
    model = TrainingStep(settings.model, settings.train)
    apply_start(model, start)
    assert model.step == 0   # a new experiment
    assert torch.allclose(model.generate(ref["x"], ref["labels"]), ref["fake_B"], atol=1e-5)


def test_init_from_starts_a_new_experiment_and_grows_the_labels(zi2zi_checkpoint, tmp_path, reference_dir,
                                                                 run_script):
    from model import load_generator
    new = tmp_path / "new"
    result = run_script("train.py", "--experiment_dir", new, "--data_dir", zi2zi_checkpoint / "data", "--init_from",
                 f"{zi2zi_checkpoint}:100", "--embedding_num", 6, "--max_steps", 1, "--batch_size", 8,
                 "--device", "cpu")
    assert "labels 4..5 are new" in result.stdout and "category head" in result.stdout
    netG, config, step = load_generator(new / "checkpoint", 1)
    assert step == 1 and config.embedding_num == 6 and config.ngf == 8
    ref_G = torch.load(reference_dir / "zi2zi_pytorch_ref_net_G.pth", weights_only=True)
    # one Adam step moves every row a little (at most lr per element); the old rows are still the old ones
    assert (netG.embedder.weight[:4] - ref_G["embedder.weight"]).abs().max() < 0.01
    result = run_script("train.py", "--experiment_dir", tmp_path / "shrink", "--data_dir", zi2zi_checkpoint / "data",
                 "--init_from", f"{zi2zi_checkpoint}:100", "--embedding_num", 2, "--device", "cpu", check=False)
    assert result.returncode == 2 and "can only grow" in result.stderr


def test_a_new_label_starts_from_the_base_style_nearest_its_glyphs(tmp_path, tiny_config, monkeypatch):
    import numpy as np

    from data.obj import encode_image, write_obj
    from training.checkpoint import save_checkpoint
    from training.config import build_parser, given_flags, resolve_settings
    from training.start import apply_start, find_start
    from training.step import TrainingStep
    base = TrainingStep(tiny_config(embedding_num=4))
    base.step = 1
    save_checkpoint(base, tmp_path / "base" / "checkpoint")

    # four clearly different base styles (an untrained generator's labels barely differ): style k
    # darkens the source's paper to a grey of its own
    def styled(self, sources, labels):
        grey = 1.0 - 0.5 * labels.float().view(-1, 1, 1, 1)
        return torch.minimum(sources, grey)
    monkeypatch.setattr(TrainingStep, "generate", styled)
    sources = torch.where(torch.rand(6, 1, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.7, -1.0, 1.0)
    targets = styled(None, sources, torch.full((6,), 2)) + 0.02 * torch.randn(6, 1, 32, 32)   # the writer: style 2

    def to_uint8(t):
        return ((t[0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    write_obj(tmp_path / "train.obj", [(4, encode_image(Image.fromarray(np.concatenate([to_uint8(t), to_uint8(s)], 1)),
                                                        "PNG")) for t, s in zip(targets, sources)])

    def grown_from(*args):
        flags = given_flags(build_parser("train").parse_args(["--experiment_dir", str(tmp_path / "new"),
                                                              "--init_from", str(tmp_path / "base"),
                                                              "--embedding_num", "5", *args]))
        start = find_start(flags, tmp_path / "new" / "checkpoint")
        settings = resolve_settings(flags, start)
        model = TrainingStep(settings.model, settings.train)
        return model, apply_start(model, start, tmp_path / "train.obj")[1]

    grown, notes = grown_from()
    assert any(n.startswith("note: label 4 starts from label 2's style, the base style nearest its glyphs")
               and "on 6 of them" in n for n in notes), notes
    weight = grown.netG.embedder.weight
    assert torch.equal(weight[4], weight[2]) and torch.equal(weight[:4], base.netG.embedder.weight)
    # --new_label_init random keeps the usual initialisation
    plain, notes = grown_from("--new_label_init", "random")
    assert not torch.equal(plain.netG.embedder.weight[4], plain.netG.embedder.weight[2])
    assert not any("starts from label" in n for n in notes)
    flags = given_flags(build_parser("train").parse_args(["--experiment_dir", str(tmp_path / "x"),
                                                          "--new_label_init", "random"]))
    with pytest.raises(UserError, match="--new_label_init .* give --init_from too"):
        find_start(flags, tmp_path / "x" / "checkpoint")


def test_few_shot_recipe_fine_tunes_the_base_with_the_label_grown(zi2zi_checkpoint, tmp_path, reference_dir,
                                                                   run_script):
    from data.obj import read_obj, write_obj
    from model import load_generator
    from training.recipes import FEW_SHOT
    mine = tmp_path / "mine"
    mine.mkdir()
    # the writer's six glyphs, a label the base (4 labels) does not have
    write_obj(mine / "train.obj", [(4, r.image_bytes) for r in read_obj(zi2zi_checkpoint / "data" / "train.obj")[:6]])
    flags = ["--experiment_dir", tmp_path / "new", "--data_dir", mine, "--init_from", f"{zi2zi_checkpoint}:100",
             "--recipe", "few_shot", "--batch_size", 4, "--device", "cpu"]
    planned = run_script("train.py", *flags, "--dry_run").stdout
    assert (f"note: --recipe few_shot (6 glyphs of label 4) sets --embedding_num 5, --fine_tune 4, "
            f"--lr {FEW_SHOT.lr}, --freeze_encoder {str(FEW_SHOT.freeze_encoder).lower()}, "
            f"--max_steps {FEW_SHOT.steps(6)}, ") in planned
    result = run_script("train.py", *flags, "--max_steps", 2)
    assert "--max_steps" not in result.stdout.splitlines()[0]   # given on the command line: the flag wins
    assert "note: label 4 starts from label" in result.stdout
    netG, config, step = load_generator(tmp_path / "new" / "checkpoint", 2)
    assert step == 2 and config.embedding_num == 5 and config.ngf == 8
    ref_G = torch.load(reference_dir / "zi2zi_pytorch_ref_net_G.pth", weights_only=True)
    # only label 4 was trained (--fine_tune 4); the base's rows are the base's, two small Adam steps apart
    assert (netG.embedder.weight[:4] - ref_G["embedder.weight"]).abs().max() < 0.01
    state = torch.load(tmp_path / "new" / "checkpoint" / "2_state.pth", weights_only=True)
    assert state["run_config"]["fine_tune"] in ([4], (4,)) and state["train_config"]["lr"] == FEW_SHOT.lr
    refused = run_script("train.py", "--experiment_dir", tmp_path / "other", "--data_dir", mine, "--recipe",
                         "few_shot", "--device", "cpu", check=False)
    assert refused.returncode == 2 and "give --init_from" in refused.stderr and "Traceback" not in refused.stderr
    refused = run_script("train.py", *flags, "--resume", "latest", check=False)
    assert refused.returncode == 2 and "leave --recipe out with --resume" in refused.stderr
