#!/usr/bin/env python3
"""PyTorch twins of mri-synth's five models, timed the way `examples/throughput.rs` times them.

One command compares both on this machine, in one sitting (docs/performance.md):

    pip install -r benches/pytorch/requirements.txt
    cargo build --release --example throughput
    python3 benches/pytorch/bench.py --rust target/release/examples/throughput

For every model and preset it times PyTorch in this process, then runs the Rust binary with the
same arguments, and prints a Markdown table of images/s and the Rust / PyTorch ratios (plus one
JSON line per measurement with --json). `--model cnn --preset paper` times one model only;
without --rust only PyTorch is timed. `--rounds 3` alternates PyTorch and Rust three times per
model and reports medians; `--rust-arg=--conv=im2col` passes an argument on to the Rust binary
(there: every conv as im2col + GEMM, the yardstick of the shifted-view convs).

The twins mirror the Rust layouts layer for layer (the parameter counts are printed beside the
Rust ones and must agree) and the training step of `throughput`:
- cnn: cross-entropy on random labels, Adam/AdamW of the preset;
- generative-vae, anomaly-vae: reparameterised encode, decode, the preset's loss (summed BCE + KL,
  or summed squared error + beta KL), Adam/AdamW;
- gan: D on real + D on detached fake, D step, G step (BCE or hinge; the default preset also
  DiffAugment on both passes and spectral norm on D), counted as `batch` images;
- denoising-ae: coarse noise (low resolution, upsampled, rolled, masked to the head) added,
  mean squared error against the clean image.
Inference is an eval-mode forward under no_grad (VAEs: reconstruct from the mean code; GAN: the
generator sampling `batch` codes). The median over the timed steps is reported.
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS = ["cnn", "generative-vae", "anomaly-vae", "gan", "denoising-ae"]
PRESETS = ["paper", "default"]
# The image side and batch each preset is measured at: the paper preset at the study's 128 px and
# batch 64 (the yardstick of issue 16), the default preset at what the main job trains with.
PRESET_SIZE = {"paper": 128, "default": 64}
DEFAULT_BATCH = {
    ("cnn", "paper"): 64, ("generative-vae", "paper"): 64, ("anomaly-vae", "paper"): 64,
    ("gan", "paper"): 64, ("denoising-ae", "paper"): 64,
    ("cnn", "default"): 32, ("generative-vae", "default"): 32, ("anomaly-vae", "default"): 32,
    ("gan", "default"): 32, ("denoising-ae", "default"): 16,
}


def adam(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0):
    # mri-train's Adam is AdamW (decoupled decay) when weight_decay > 0, plain Adam otherwise.
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, betas=betas, eps=1e-8, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=1e-8)


def trainable(*modules):
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


# ---------------------------------------------------------------- CNN (crates/mri-cnn/src/model.rs)

class PlainCnn(nn.Module):
    """The study's: per width conv 3x3 -> BN -> ReLU -> max-pool 2; flatten; dropout + linear + ReLU
    per hidden width; linear -> 2."""

    def __init__(self, side, channels, hidden, dropout):
        super().__init__()
        layers, c_in = [], 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, 1, 1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.body = nn.Sequential(*layers, nn.Flatten())
        d = c_in * (side >> len(channels)) ** 2
        head = []
        for h in hidden:
            head += [nn.Dropout(dropout), nn.Linear(d, h), nn.ReLU()]
            d = h
        self.head = nn.Sequential(*head, nn.Linear(d, 2))

    def forward(self, x):
        return self.head(self.body(x))


class ResidualBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = nn.Conv2d(c_out, c_out, 3, 1, 1), nn.BatchNorm2d(c_out)
        self.shortcut = None
        if c_in != c_out or stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, 0), nn.BatchNorm2d(c_out))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.shortcut is None else self.shortcut(x)))


class ResidualCnn(nn.Module):
    """Stem conv 3x3 stride 2 -> BN -> ReLU, a residual block per width (stride 2 from the second
    on), global average pooling, dropout, linear -> 2."""

    def __init__(self, channels, dropout):
        super().__init__()
        c0 = channels[0]
        self.stem = nn.Sequential(nn.Conv2d(1, c0, 3, 2, 1), nn.BatchNorm2d(c0), nn.ReLU())
        blocks, c_in = [], c0
        for i, c in enumerate(channels):
            blocks.append(ResidualBlock(c_in, c, 1 if i == 0 else 2))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(c_in, 2)

    def forward(self, x):
        return self.out(self.drop(self.blocks(self.stem(x)).mean((2, 3))))


# ------------------------------------------------------------- VAEs (crates/mri-vae/src/model.rs)

class VaeHeads(nn.Module):
    """What both VAEs share: an encoder of one `enc_block(c_in, c_out)` per width, flattened;
    mu and logvar linear heads; a linear -> ReLU -> reshape into the decoder's first maps. The
    subclass builds `self.dec` from `self.top` channels to the widths in `self.outs`."""

    def __init__(self, side, channels, latent, enc_block):
        super().__init__()
        enc, c_in = [], 1
        for c in channels:
            enc += enc_block(c_in, c)
            c_in = c
        self.enc = nn.Sequential(*enc, nn.Flatten())
        self.b = side >> len(channels)
        self.top = channels[-1]
        flat = self.top * self.b * self.b
        self.mu, self.logvar, self.dec_in = nn.Linear(flat, latent), nn.Linear(flat, latent), nn.Linear(latent, flat)
        self.outs = list(reversed(channels))[1:] + [1]

    def encode(self, x):
        h = self.enc(x)
        return self.mu(h), self.logvar(h)

    def decode_logits(self, z):
        return self.dec(F.relu(self.dec_in(z)).view(z.shape[0], self.top, self.b, self.b))


class GenerativeVae(VaeHeads):
    """Encoder: conv 3x3 stride 2 -> BN -> LeakyReLU 0.2 per width; mu and logvar linear. Decoder:
    linear -> ReLU -> reshape, then per width (reversed, ending in 1) nearest upsample x2 -> conv
    3x3 -> BN -> ReLU (no BN/ReLU on the last); logits."""

    def __init__(self, side, channels, latent):
        super().__init__(side, channels, latent, lambda i, o: [nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.LeakyReLU(0.2)])
        dec, c_in = [], self.top
        for j, c in enumerate(self.outs):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c, 3, 1, 1)]
            if j + 1 < len(self.outs):
                dec += [nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.dec = nn.Sequential(*dec)


class SpatialGenerativeVae(nn.Module):
    """The default preset's generative VAE since session 13: encoder as GenerativeVae's (conv 3x3
    stride 2 -> BN -> LeakyReLU 0.2 per width), kept as a map; a spatial code of `code` channels
    (1x1 convs to mu and logvar, flattened); decoder: conv 3x3 -> ReLU back to the top width,
    then per width (reversed, ending in 1) nearest upsample x2 -> conv 3x3 -> BN -> ReLU and
    `extra` more conv 3x3 -> BN -> ReLU at that scale (none of either after the last); logits."""

    def __init__(self, side, channels, code, extra):
        super().__init__()
        enc, c_in = [], 1
        for c in channels:
            enc += [nn.Conv2d(c_in, c, 3, 2, 1), nn.BatchNorm2d(c), nn.LeakyReLU(0.2)]
            c_in = c
        self.enc = nn.Sequential(*enc)
        self.b, self.code = side >> len(channels), code
        self.mu, self.logvar = nn.Conv2d(c_in, code, 1), nn.Conv2d(c_in, code, 1)
        self.dec_in = nn.Conv2d(code, c_in, 3, 1, 1)
        outs, dec = list(reversed(channels))[1:] + [1], []
        for j, c in enumerate(outs):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c, 3, 1, 1)]
            if j + 1 < len(outs):
                dec += [nn.BatchNorm2d(c), nn.ReLU()]
                for _ in range(extra):
                    dec += [nn.Conv2d(c, c, 3, 1, 1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.dec = nn.Sequential(*dec)

    def encode(self, x):
        h = self.enc(x)
        return self.mu(h).flatten(1), self.logvar(h).flatten(1)

    def decode_logits(self, z):
        return self.dec(F.relu(self.dec_in(z.view(z.shape[0], self.code, self.b, self.b))))


class AnomalyVae(VaeHeads):
    """Encoder: conv 4x4 stride 2 pad 1 -> ReLU per width; decoder: transposed convs, either
    mirrored (4x4 stride 2 pad 1) or the study's stride-1 kernels of side (b << j) + 1."""

    def __init__(self, side, channels, latent, study_decoder):
        super().__init__(side, channels, latent, lambda i, o: [nn.Conv2d(i, o, 4, 2, 1), nn.ReLU()])
        dec, c_in = [], self.top
        for j, c in enumerate(self.outs):
            if study_decoder:
                dec.append(nn.ConvTranspose2d(c_in, c, (self.b << j) + 1, 1, 0))
            else:
                dec.append(nn.ConvTranspose2d(c_in, c, 4, 2, 1))
            if j + 1 < len(self.outs):
                dec.append(nn.ReLU())
            c_in = c
        self.dec = nn.Sequential(*dec)


def vae_loss(kind, beta, logits, x, mu, logvar):
    # mri_vae::vae_loss: summed over pixels and codes, divided by the batch.
    if kind == "bce":
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    else:
        recon = (torch.sigmoid(logits) - x).pow(2).sum()
    kl = 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum()
    return (recon + beta * kl) / x.shape[0]


# -------------------------------------------------------------- GAN (crates/mri-gan/src/model.rs)

class Generator(nn.Module):
    """Linear(latent -> base * s0^2) -> ReLU -> reshape; per width nearest upsample x2 -> conv 3x3
    -> BN -> ReLU; upsample x2 -> conv 3x3 -> 1 -> tanh."""

    def __init__(self, side, latent, base, channels):
        super().__init__()
        self.s0 = side >> (len(channels) + 1)
        self.base = base
        self.fc = nn.Linear(latent, base * self.s0 * self.s0)
        layers, c_in = [], base
        for c in channels:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c, 3, 1, 1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, 1, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(F.relu(self.fc(z)).view(z.shape[0], self.base, self.s0, self.s0))


class Discriminator(nn.Module):
    """Per width conv 4x4 stride 2 pad 1 -> LeakyReLU 0.2; flatten; linear -> 1 logit; spectral
    norm on every weight when asked (torch's parametrisation: one power iteration per training
    forward). `pack` images stacked as input channels make one input (PacGAN, GanConfig::d_pack):
    one logit per pack."""

    def __init__(self, side, channels, spectral, pack=1):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.pack = pack
        layers, c_in = [], pack
        for c in channels:
            layers += [sn(nn.Conv2d(c_in, c, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c_in = c
        layers += [nn.Flatten(), sn(nn.Linear(c_in * (side >> len(channels)) ** 2, 1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def diff_augment(x, brightness=0.5, contrast=0.5, translation=0.125, cutout=0.5):
    """DiffAugment (Zhao et al. 2020, mit-han-lab/data-efficient-gans DiffAugment_pytorch.py) with
    the strengths of mri_gan::DiffAugment::reference(): per-image brightness and contrast,
    translation with zero (= -1 in [-1, 1]) padding, one cutout square per image."""
    n, _, h, w = x.shape
    x = x + (torch.rand(n, 1, 1, 1) * 2 - 1) * brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (1 - contrast + torch.rand(n, 1, 1, 1) * 2 * contrast) + mean
    s = round(min(h, w) * translation)
    if s > 0:
        padded = F.pad(x + 1, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (n,))
        dx = torch.randint(0, 2 * s + 1, (n,))
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(n, 1, h, w + 2 * s)
        padded = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(n, 1, h, w)
        x = padded.gather(3, cols) - 1
    size = round(min(h, w) * cutout)
    if size > 0:
        cy = torch.randint(0, h + (1 - size % 2), (n, 1, 1)) - size // 2
        cx = torch.randint(0, w + (1 - size % 2), (n, 1, 1)) - size // 2
        yy = torch.arange(h)[None, :, None]
        xx = torch.arange(w)[None, None, :]
        inside = (yy >= cy) & (yy < cy + size) & (xx >= cx) & (xx < cx + size)
        x = x * (~inside).unsqueeze(1).to(x.dtype)
    return x


# ------------------------------------------------------------ DAE (crates/mri-dae/src/model.rs)

def conv_bn_relu(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.ReLU())


class DenoisingAe(nn.Module):
    """UNet: per width two conv-BN-ReLU (max-pool 2 between levels); up: nearest x2 ->
    conv-BN-ReLU to the skip's width, concatenate the skip, two conv-BN-ReLU; a 1x1 conv to one
    channel added to the input (the network predicts the correction)."""

    def __init__(self, channels):
        super().__init__()
        self.down = nn.ModuleList()
        c_prev = 1
        for c in channels:
            self.down.append(nn.Sequential(conv_bn_relu(c_prev, c), conv_bn_relu(c, c)))
            c_prev = c
        self.up_convs, self.up = nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(channels) - 1)):
            self.up_convs.append(conv_bn_relu(channels[i + 1], channels[i]))
            self.up.append(nn.Sequential(conv_bn_relu(2 * channels[i], channels[i]), conv_bn_relu(channels[i], channels[i])))
        self.out = nn.Conv2d(channels[0], 1, 1)

    def forward(self, x):
        skips, h = [], x
        for i, level in enumerate(self.down):
            if i > 0:
                h = F.max_pool2d(h, 2)
            h = level(h)
            skips.append(h)
        skips.pop()
        for conv, level in zip(self.up_convs, self.up):
            h = conv(F.interpolate(h, scale_factor=2, mode="nearest"))
            h = level(torch.cat([h, skips.pop()], 1))
        return x + self.out(h)


def coarse_noise(x, res, std=0.2, head_threshold=0.05, mixed=True):
    """mri_dae::coarse_noise: Gaussian noise on a res x res grid, upsampled (bilinear, or per image
    bilinear or nearest when mixed), rolled by a random shift, kept inside the head."""
    n, c, h, w = x.shape
    grid = torch.randn(n, c, res, res) * std
    up = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
    if mixed:
        coin = (torch.randn(n, 1, 1, 1) >= 0).to(x.dtype)
        up = up * (1 - coin) + F.interpolate(grid, size=(h, w), mode="nearest") * coin
    up = torch.roll(up, shifts=(int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))), dims=(2, 3))
    return up * (x > head_threshold).to(x.dtype)


# ------------------------------------------------------------------------------- timing

def time_steps(warmup, steps, f):
    for _ in range(warmup):
        f()
    t = []
    for _ in range(steps):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def measure(model, preset, batch, side, warmup, steps):
    torch.manual_seed(0)
    x = torch.sigmoid(torch.randn(batch, 1, side, side))
    paper = preset == "paper"
    if model == "cnn":
        if paper:
            net = PlainCnn(side, [32, 64, 128], [1024, 512, 128], 0.5)
            opt = adam(net.parameters(), lr=1e-3)
        else:
            net = ResidualCnn([16, 32, 64], 0.2)
            opt = adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
        y = torch.arange(batch) % 2

        def train():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()

        def infer():
            net(x).sum().item()

        nets = (net,)
    elif model in ("generative-vae", "anomaly-vae"):
        if model == "generative-vae":
            if paper:
                net, loss, beta = GenerativeVae(side, [64, 128, 256, 512, 512, 1024], 512), "bce", 1.0
                opt = adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999), weight_decay=1e-5)
            else:
                net, loss, beta = SpatialGenerativeVae(side, [32, 64, 128], 2, 1), "mse", 0.01
                opt = adam(net.parameters(), lr=1e-3)
        else:
            net = AnomalyVae(side, [32, 64], 64, study_decoder=paper)
            loss, beta = "bce", 1.0
            opt = adam(net.parameters(), lr=1e-3)

        def train():
            opt.zero_grad(set_to_none=True)
            mu, logvar = net.encode(x)
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            vae_loss(loss, beta, net.decode_logits(z), x, mu, logvar).backward()
            opt.step()

        def infer():
            mu, _ = net.encode(x)
            torch.sigmoid(net.decode_logits(mu)).sum().item()

        nets = (net,)
    elif model == "gan":
        if paper:
            latent, g = 100, Generator(side, 100, 128, [128, 64, 32])
            d, hinge, aug = Discriminator(side, [64, 128, 256, 512], spectral=False), False, (lambda t: t)
        else:
            latent, g = 100, Generator(side, 100, 128, [128, 64, 32])  # the study's G widths (default since session 24)
            # Pairs of images as one discriminator input (d_pack = 2) and an EMA of G's weights
            # (ema_decay = 0.999), as the default preset trains: before session 32 this harness
            # judged every image alone (twice the discriminator's work, 256 fewer parameters).
            d, hinge, aug = Discriminator(side, [16, 32, 64, 128], spectral=True, pack=2), True, diff_augment
        pack = d.pack
        ema = None if paper else [p.detach().clone() for p in g.parameters()]
        opt_g = adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        real_img = x * 2 - 1

        def judge(t):
            t = aug(t)
            return d(t.reshape(t.shape[0] // pack, pack, t.shape[2], t.shape[3]))

        def train():
            # mri_gan::gan_step: D on real + D on detached fake, D step; then G step.
            opt_d.zero_grad(set_to_none=True)
            fake = g(torch.randn(batch, latent)).detach()
            lr_, lf = judge(real_img), judge(fake)
            if hinge:
                d_loss = F.relu(1 - lr_).mean() + F.relu(1 + lf).mean()
            else:
                d_loss = F.binary_cross_entropy_with_logits(lr_, torch.ones_like(lr_)) + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad(set_to_none=True)
            lg = judge(g(torch.randn(batch, latent)))
            g_loss = -lg.mean() if hinge else F.binary_cross_entropy_with_logits(lg, torch.ones_like(lg))
            g_loss.backward()
            opt_g.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(ema, [p.detach() for p in g.parameters()], 1 - 0.999)

        z = torch.randn(batch, latent)

        def infer():
            g(z).sum().item()

        nets = (g, d)
    elif model == "denoising-ae":
        if paper:
            net, res = DenoisingAe([64, 128, 256, 512]), 16
            opt = adam(net.parameters(), lr=1e-4, weight_decay=1e-5)
            mixed = False
        else:
            net, res = DenoisingAe([8, 16, 32, 64]), max(side // 8, 2)
            opt = adam(net.parameters(), lr=1e-3, weight_decay=1e-5)
            mixed = True

        def train():
            opt.zero_grad(set_to_none=True)
            noisy = x + coarse_noise(x, res, mixed=mixed)
            (net(noisy) - x).pow(2).mean().backward()
            opt.step()

        def infer():
            net(x).sum().item()

        nets = (net,)
    else:
        raise SystemExit(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")

    for n in nets:
        n.train()
    train_s = time_steps(warmup, steps, train)
    for n in nets:
        n.eval()
    with torch.no_grad():
        infer_s = time_steps(warmup, steps, infer)
    return {
        "framework": f"pytorch {torch.__version__}",
        "model": model,
        "preset": preset,
        "batch": batch,
        "image_size": side,
        "params": trainable(*nets),
        "train_images_per_s": batch / train_s,
        "infer_images_per_s": batch / infer_s,
    }


def run_rust(binary, model, preset, batch, side, warmup, steps, extra=()):
    cmd = [binary, "--model", model, "--preset", preset, "--batch", str(batch), "--image-size", str(side), "--warmup", str(warmup), "--steps", str(steps), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def median_of(results):
    """The first result with each images/s figure replaced by its median over `results`."""
    out = dict(results[0])
    for key in ("train_images_per_s", "infer_images_per_s"):
        out[key] = statistics.median(r[key] for r in results)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=MODELS, action="append", help="model(s) to time (default: all)")
    ap.add_argument("--preset", choices=PRESETS, action="append", help="preset(s) to time (default: both)")
    ap.add_argument("--batch", type=int, help="images per step (default: 64 at paper, the preset's batch at default)")
    ap.add_argument("--image-size", type=int, help="image side (default: 128 at paper, 64 at default)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--steps", type=int, default=7, help="timed steps (median reported)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads (the machine's cores)")
    ap.add_argument("--rust", help="path of the Rust throughput binary: time it too, right after PyTorch")
    ap.add_argument("--rust-arg", action="append", default=[], help="extra argument for the Rust binary (repeatable), e.g. --rust-arg=--conv=im2col")
    ap.add_argument("--rounds", type=int, default=1,
                    help="time PyTorch and Rust alternately this many times per model and report each figure's median "
                         "(shared machines vary by ±30 %% from one minute to the next)")
    ap.add_argument("--json", action="store_true", help="also print one JSON line per measurement")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for preset in a.preset or PRESETS:
        for model in a.model or MODELS:
            side = a.image_size or PRESET_SIZE[preset]
            batch = a.batch or DEFAULT_BATCH[(model, preset)]
            pts, rss = [], []
            for _ in range(max(a.rounds, 1)):
                pts.append(measure(model, preset, batch, side, a.warmup, a.steps))
                if a.rust:
                    rss.append(run_rust(a.rust, model, preset, batch, side, a.warmup, a.steps, a.rust_arg))
                if a.json:
                    print(json.dumps(pts[-1]), flush=True)
                    if rss:
                        print(json.dumps({"framework": "mri-synth", **rss[-1]}), flush=True)
            pt, rs = median_of(pts), (median_of(rss) if rss else None)
            if rs and rs["params"] != pt["params"]:
                print(f"warning: {model} {preset}: {rs['params']} parameters in Rust, {pt['params']} in PyTorch", file=sys.stderr)
            rows.append((pt, rs))
            print(f"{model} {preset}: pytorch train {pt['train_images_per_s']:.1f} img/s infer {pt['infer_images_per_s']:.1f}"
                  + (f" | rust train {rs['train_images_per_s']:.1f} infer {rs['infer_images_per_s']:.1f}" if rs else ""), file=sys.stderr, flush=True)
    print(f"\nPyTorch {torch.__version__}, {a.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}\n")
    if a.rust:
        print("| model | preset | px | batch | params | train img/s Rust | PyTorch | ratio | infer img/s Rust | PyTorch | ratio |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for pt, rs in rows:
            print(f"| {pt['model']} | {pt['preset']} | {pt['image_size']} | {pt['batch']} | {rs['params']:,} | {rs['train_images_per_s']:.1f} | {pt['train_images_per_s']:.1f} | "
                  f"**{rs['train_images_per_s'] / pt['train_images_per_s']:.2f}** | {rs['infer_images_per_s']:.1f} | {pt['infer_images_per_s']:.1f} | "
                  f"**{rs['infer_images_per_s'] / pt['infer_images_per_s']:.2f}** |")
    else:
        print("| model | preset | px | batch | params | train img/s | infer img/s |")
        print("|---|---|---|---|---|---|---|")
        for pt, _ in rows:
            print(f"| {pt['model']} | {pt['preset']} | {pt['image_size']} | {pt['batch']} | {pt['params']:,} | {pt['train_images_per_s']:.1f} | {pt['infer_images_per_s']:.1f} |")


if __name__ == "__main__":
    main()
