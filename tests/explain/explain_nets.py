"""Networks and data shared by the explain tests (imported by the test files next to it)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeptoolbox import Network
from deeptoolbox import layers as L

SHAPES = ["square", "triangle", "disk", "none"]


class RegionNet(nn.Module):
    """Only the pixels inside ``region`` (a bool (H, W) mask) can affect the outputs."""

    def __init__(self, region: torch.Tensor, classes: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.register_buffer("region", region.float())
        self.conv = nn.Conv2d(1, 6, 3, padding=1, bias=False)
        self.head = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(x * self.region))
        return self.head(features.mean((2, 3)))


class SpanNet(nn.Module):
    """Sequences (N, T, C): only the time steps inside ``span`` (bool (T,)) matter."""

    def __init__(self, span: torch.Tensor, channels: int = 2, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.register_buffer("span", span.float())
        self.conv = nn.Conv1d(channels, 5, 3, padding=1, bias=False)  # PyTorch layout (N, C, T)
        self.head = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        masked = (x * self.span[None, :, None]).transpose(1, 2)
        return self.head(torch.tanh(self.conv(masked)).mean(2))


def region_mask(size: int = 16, rows=(4, 10), cols=(2, 8)) -> torch.Tensor:
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grow a bool mask (H, W) or (T,) by ``radius`` positions."""
    if radius == 0:
        return mask
    values = mask.float()[None, None]
    kernel = 2 * radius + 1
    if mask.dim() == 1:
        return F.max_pool1d(values, kernel, 1, radius)[0, 0] > 0
    return F.max_pool2d(values, kernel, 1, radius)[0, 0] > 0


def mass_inside(maps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of |map| inside ``mask``, per observation."""
    total = maps.abs().flatten(1).sum(1)
    inside = (maps.abs() * mask).flatten(1).sum(1)
    return inside / total.clamp_min(1e-30)


def make_shapes(n: int, seed: int = 0, size: int = 16) -> tuple[torch.Tensor, ...]:
    """Images (n, 1, size, size) of a square outline, a triangle, a disk or nothing, on noise.

    Returns images, labels (0..3, 3 = no shape) and the bool masks of the shape pixels. The
    "none" class makes every shape class need evidence of its own shape.
    """
    generator = torch.Generator().manual_seed(seed)
    images = 0.15 * torch.randn(n, 1, size, size, generator=generator)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    labels = torch.randint(0, 4, (n,), generator=generator)
    yy, xx = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    stamps = [
        (yy == 0) | (yy == 6) | (xx == 0) | (xx == 6),
        yy >= xx,
        (yy - 3) ** 2 + (xx - 3) ** 2 <= 9,
    ]
    corners = torch.randint(0, size - 7 + 1, (n, 2), generator=generator)
    for i in range(n):
        if int(labels[i]) == 3:
            continue
        r, c = corners[i].tolist()
        masks[i, r : r + 7, c : c + 7] = stamps[int(labels[i])]
    images[:, 0][masks] += 1.0
    return images, labels, masks


def shapes_cnn(seed: int = 0) -> Network:
    torch.manual_seed(seed)
    return Network(
        [
            L.ImageInput((1, 16, 16), name="image"),
            L.Conv2d(8, 3, padding="same", name="conv1"),
            L.ReLU(name="relu1"),
            L.MaxPool2d(2, name="pool1"),
            L.Conv2d(16, 3, padding="same", name="conv2"),
            L.ReLU(name="relu2"),
            L.Conv2d(16, 3, padding="same", name="conv3"),
            L.ReLU(name="relu3"),
            L.GlobalAvgPool(name="gap"),
            L.Dense(4, name="fc"),
            L.Softmax(name="prob"),
        ],
        classes=SHAPES,
        name="shapes-cnn",
    )


def train_briefly(net: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 8) -> None:
    """A plain PyTorch loop (cross-entropy on the scores before the softmax)."""
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for start in range(0, len(y), 32):
            index = order[start : start + 32]
            scores = net(x[index]).clamp_min(1e-8)
            loss = F.nll_loss(torch.log(scores), y[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()


def direct_gradcam(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, weights: torch.Tensor, channels_last=False
) -> torch.Tensor:
    """Grad-CAM written out: hooked activation, retained gradient, weighted sum, ReLU, resize."""
    saved = {}

    def hook(module, inputs, output):
        output.retain_grad()
        saved["a"] = output

    handle = layer.register_forward_hook(hook)
    try:
        output = model(x)
    finally:
        handle.remove()
    (output * weights).sum().backward()
    activation, gradient = saved["a"].detach(), saved["a"].grad
    if channels_last:
        activation, gradient = activation.transpose(1, 2), gradient.transpose(1, 2)
    dims = tuple(range(2, activation.dim()))
    cam = torch.relu((gradient.mean(dims, keepdim=True) * activation).sum(1))
    size = x.shape[2:] if x.dim() == 4 else x.shape[1:2]
    mode = "bilinear" if x.dim() == 4 else "linear"
    return F.interpolate(cam[:, None], size=tuple(size), mode=mode, align_corners=False)[:, 0]
