"""DCGAN / LSGAN / BiGAN networks, their losses (against hand computation) and DiffAugment."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.errors import GenlabError
from genlab.models.bigan import BiGAN, generator_encoder_loss
from genlab.models.dcgan import DCGAN, DCGANDiscriminator, DCGANGenerator, discriminator_loss, generator_loss
from genlab.train.diffaugment import color, cutout, diff_augment, translation


def test_study_shapes_at_64x64():
    torch.manual_seed(0)
    g = DCGANGenerator(latent_dim=100, channels=3, image_size=64, width=8)
    x = g(torch.randn(2, 100))
    assert x.shape == (2, 3, 64, 64) and x.abs().max() <= 1  # tanh output
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [64, 32, 16, 8, 3]  # 8w, 4w, 2w, w, image
    d = DCGANDiscriminator(channels=3, image_size=64, width=8)
    assert d(x).shape == (2,)
    assert not any(isinstance(m, torch.nn.Sigmoid) for m in d.modules())  # logits (LSGAN uses them raw)
    leaky = [m for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.2 for m in leaky)


def test_bigan_shapes():
    torch.manual_seed(0)
    net = BiGAN(latent_dim=100, channels=3, image_size=16, g_width=8, d_width=8)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    z = net.encode(x)
    assert z.shape == (4, 100)
    assert net.reconstruct(x).shape == x.shape
    assert net.discriminator(x, z).shape == (4,)
    enc_acts = {type(m) for m in net.encoder.modules()}
    assert torch.nn.ReLU in enc_acts and torch.nn.BatchNorm2d in enc_acts


def test_bad_image_size_is_clear():
    with pytest.raises(ValueError, match="power-of-two"):
        DCGANGenerator(image_size=48)


def test_init_is_normal_0_002():
    torch.manual_seed(0)
    net = DCGAN(latent_dim=100, channels=3, image_size=64, g_width=32, d_width=32)
    w = torch.cat([m.weight.detach().flatten() for m in net.modules()
                   if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
    assert abs(float(w.mean())) < 1e-3 and float(w.std()) == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([m.weight.detach() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert float(bn.mean()) == pytest.approx(1.0, abs=0.005) and float(bn.std()) == pytest.approx(0.02, rel=0.2)
    assert all(float(m.bias.abs().max()) == 0 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_losses_against_hand_computation():
    real, fake = torch.tensor([2.0, -0.5]), torch.tensor([0.3, -1.0])
    bce_d = (sum(-math.log(_sig(r)) for r in [2.0, -0.5]) / 2 + sum(-math.log(1 - _sig(f)) for f in [0.3, -1.0]) / 2)
    assert float(discriminator_loss(real, fake, "bce")) == pytest.approx(bce_d, rel=1e-6)
    assert float(generator_loss(fake, "bce")) == pytest.approx(-(math.log(_sig(0.3)) + math.log(_sig(-1.0))) / 2,
                                                               rel=1e-6)
    ls_d = 0.5 * ((2.0 - 1) ** 2 + (-0.5 - 1) ** 2) / 2 + 0.5 * (0.3 ** 2 + 1.0 ** 2) / 2
    assert float(discriminator_loss(real, fake, "ls")) == pytest.approx(ls_d, rel=1e-6)
    assert float(generator_loss(fake, "ls")) == pytest.approx(0.5 * ((0.3 - 1) ** 2 + (-1.0 - 1) ** 2) / 2, rel=1e-6)
    # BiGAN: G and E want D(G(z), z) -> 1 and D(x, E(x)) -> 0
    ge = (-(math.log(_sig(0.3)) + math.log(_sig(-1.0))) / 2 - (math.log(1 - _sig(2.0)) + math.log(1 - _sig(-0.5))) / 2)
    assert float(generator_encoder_loss(real, fake)) == pytest.approx(ge, rel=1e-6)
    with pytest.raises(ValueError):
        generator_loss(fake, "wasserstein")


def test_translation_moves_a_pixel_within_the_ratio():
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = translation(x, ratio=0.125)  # up to 2 pixels
    for img in y:
        nz = img[0].nonzero()
        assert len(nz) == 1
        assert (nz[0] - torch.tensor([8, 8])).abs().max() <= 2
    shifts = {tuple((img[0].nonzero()[0] - 8).tolist()) for img in y}
    assert len(shifts) > 5  # really random per image


def test_cutout_zeroes_one_square():
    torch.manual_seed(0)
    y = cutout(torch.ones(32, 3, 16, 16), ratio=0.5)
    for img in y:
        zero = (img[0] == 0).nonzero()
        rows, cols = zero[:, 0].unique(), zero[:, 1].unique()
        assert len(zero) == len(rows) * len(cols)  # a rectangle (clipped square)
        assert len(rows) <= 8 and len(cols) <= 8
        assert torch.equal(img[0] == 0, img[2] == 0)  # same mask on every channel
    assert (y == 0).float().mean() > 0.1


def test_diffaugment_is_differentiable_and_checks_policy():
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    diff_augment(x, "color,translation,cutout").sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert color(x).shape == x.shape
    with pytest.raises(GenlabError, match="model.diffaugment"):
        diff_augment(x, "color,flip")


def test_the_lsgan_discriminator_scores_each_image_on_its_own():
    """With BatchNorm and batches that are all real or all fake, D's scores on a batch move with the
    rest of the batch, and the least-squares LSGAN drew noise; the LSGAN configs drop it."""
    from genlab.config import load_config
    from genlab.models.registry import build_model

    torch.manual_seed(0)
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    for name in ("lsgan-bitmoji", "lsgan-bitmoji-quick", "lsgan-bitmoji-recipe"):
        cfg = load_config(name, ["data.image_size=32", "model.d_width=4", "model.g_width=4"])
        d = build_model(cfg).discriminator.train()
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules()), name
        together, alone = d(x), torch.cat([d(x[i:i + 1]) for i in range(len(x))])
        assert torch.allclose(together, alone, atol=1e-6), name
    # the study's DCGAN keeps DCGAN's BatchNorm: a score there depends on the batch it came in
    d = build_model(load_config("dcgan-bitmoji", ["data.image_size=32", "model.d_width=4"])).discriminator.train()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert not torch.allclose(d(x)[:3], d(x[:3]), atol=1e-4)


def test_the_bigan_keeps_its_batch_norm():
    from genlab.config import load_config

    with pytest.raises(GenlabError, match="d_batch_norm=false is for dcgan and lsgan"):
        load_config("bigan-bitmoji", ["model.d_batch_norm=false"])
