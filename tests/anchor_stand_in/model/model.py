import torch
from torch import nn

from utils.init_net import init_net   # the stand-in's own utils, as zi2zi-pytorch imports its own

STEPS = []   # every optimize_parameters call, so a test can see the stand-in was timed


class Zi2ZiModel:
    def __init__(self, input_nc=3, embedding_num=40, embedding_dim=128, ngf=64, ndf=64, Lconst_penalty=15,
                 Lcategory_penalty=1, L1_penalty=100, schedule=10, lr=0.001, gpu_ids=None, save_dir='.',
                 is_training=True, image_size=256):
        self.input_nc, self.ngf, self.gpu_ids, self.lr = input_nc, ngf, gpu_ids, lr

    def setup(self):
        self.netG = init_net(nn.Conv2d(self.input_nc, self.input_nc, 3, padding=1), gpu_ids=self.gpu_ids)
        self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=self.lr, betas=(0.5, 0.999))

    def set_input(self, labels, real_A, real_B):
        self.labels, self.real_A, self.real_B = labels, real_A, real_B

    def optimize_parameters(self):
        self.optimizer_G.zero_grad()
        loss = (self.netG(self.real_A) - self.real_B).abs().mean()
        loss.backward()
        self.optimizer_G.step()
        STEPS.append(float(loss.detach()))
        return loss
