"""zi2zi-pytorch's Python API: a script written against it runs here unchanged."""
import subprocess
import sys

import pytest
import torch
from PIL import Image

ZI2ZI_STYLE_SCRIPT = '''
import torch
from torch.utils.data import DataLoader

from data import DatasetFromObj
from model import Zi2ZiModel

dataset = DatasetFromObj(OBJ, input_nc=1, augment=True, bold=False, rotate=False, blur=True, start_from=0)
dataloader = DataLoader(dataset, batch_size=4, shuffle=True)
model = Zi2ZiModel(input_nc=1, embedding_num=4, embedding_dim=16, ngf=8, ndf=8, Lconst_penalty=15,
                   Lcategory_penalty=1.0, L1_penalty=100, schedule=10, lr=0.001, gpu_ids=None,
                   save_dir=SAVE_DIR, is_training=True, image_size=256, sn_discriminator=True)
model.setup()
model.print_networks(True)
global_steps = 0
for epoch in range(2):
    for bid, batch in enumerate(dataloader):
        model.set_input(batch[0], batch[2], batch[1])
        const_loss, l1_loss, category_loss, cheat_loss = model.optimize_parameters()
        print("Epoch: [%2d], [%4d/%4d] d_loss: %.5f, g_loss: %.5f, category_loss: %.5f, cheat_loss: %.5f, "
              "const_loss: %.5f, l1_loss: %.5f" % (epoch, bid, len(dataloader), model.d_loss.item(),
              model.g_loss.item(), category_loss.item(), cheat_loss.item(), const_loss.item(), l1_loss.item()))
        global_steps += 1
        if bid >= 2:
            break
    model.update_lr()
model.save_networks(global_steps)
model.load_networks(global_steps)
model.sample(batch, SAMPLE_DIR)
print("fake", tuple(model.fake_B.shape))
'''


@pytest.mark.slow
def test_a_zi2zi_pytorch_training_script_runs_unchanged(reference_dir, repo_root, tmp_path):
    prelude = (f"OBJ = {str(reference_dir / 'zi2zi_pytorch_sample.obj')!r}\nSAVE_DIR = {str(tmp_path)!r}\n"
               f"SAMPLE_DIR = {str(tmp_path / 'sample')!r}\n")
    result = subprocess.run([sys.executable, "-c", prelude + ZI2ZI_STYLE_SCRIPT], capture_output=True, text=True,
                            cwd=repo_root, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("d_loss:") == 6 and "Total number of parameters" in result.stdout
    assert "fake (4, 1, 256, 256)" in result.stdout
    g = torch.load(tmp_path / "6_net_G.pth", weights_only=True)
    assert "model.down.0.weight" in g and "model.0.weight_orig" in torch.load(tmp_path / "6_net_D.pth",
                                                                            weights_only=True)
    pictures = sorted((tmp_path / "sample" / "2").glob("*.png"))   # the sample .obj holds label 2
    assert [p.name for p in pictures] == ["0.png", "1.png", "2.png", "3.png"]
    picture = Image.open(pictures[0])
    assert picture.mode == "RGB" and picture.size == (512, 256)    # generated | target


def test_facade_and_training_step_compute_the_same_iteration(tiny_batches):
    from model import Zi2ZiModel
    from training.step import TrainingStep
    torch.manual_seed(0)
    facade = Zi2ZiModel(input_nc=1, embedding_num=4, embedding_dim=16, ngf=8, ndf=8, image_size=32)
    facade.setup()
    torch.manual_seed(0)
    step = TrainingStep(facade.config, facade.train_config)
    labels, real_A, real_B = tiny_batches(1)[0]
    facade.set_input(labels, real_A, real_B)
    torch.manual_seed(1)
    const_loss, l1_loss, category_loss, cheat_loss = facade.optimize_parameters()
    torch.manual_seed(1)
    stats = step.train_step(labels, real_A, real_B)
    assert l1_loss.item() == stats["l1_loss"] and const_loss.item() == stats["const_loss"]
    assert facade.d_loss.item() == stats["d_loss"] and facade.g_loss.item() == stats["g_loss"]
    assert facade.train_config.schedule == 10   # zi2zi's class default
