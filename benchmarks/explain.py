"""Explainers: deeptoolbox.explain against Captum on a batch of 32 images, in one process.

Cases (toolbox and reference timed interleaved, median over rounds; ratio = toolbox / other):

- Grad-CAM (last conv block, maps upsampled to the input) vs Captum ``LayerGradCam`` +
  ``LayerAttribution.interpolate``, and vs one plain forward + backward pass of the same
  network (the floor: Grad-CAM should cost about that);
- occlusion sensitivity (8x8 mask, stride 4) vs Captum ``Occlusion`` with its default
  ``perturbations_per_eval=1``;
- image LIME (16 grid segments, 256 samples per image) vs Captum ``Lime`` with the same
  segments and samples, with its default and with batched evaluation
  (``perturbations_per_eval=64``).
- pytorch-grad-cam's ``GradCAM`` too, if it is installed.

Every case explains the predicted class. Run: ``.venv/bin/python benchmarks/explain.py``
(``--rounds N``). Recorded figures live in docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from captum.attr import LayerAttribution, LayerGradCam, Lime, Occlusion

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.explain import gradcam, image_lime, occlusion_sensitivity
from deeptoolbox.explain._lime import _grid


def make_network() -> Network:
    torch.manual_seed(0)
    return Network(
        [
            L.ImageInput((3, 32, 32)),
            L.Conv2d(32, 3, padding="same", name="conv1"),
            L.ReLU(),
            L.MaxPool2d(2),
            L.Conv2d(64, 3, padding="same", name="conv2"),
            L.ReLU(),
            L.Conv2d(64, 3, padding="same", name="conv3"),
            L.ReLU(name="relu3"),
            L.GlobalAvgPool(),
            L.Dense(10, name="fc"),
        ]
    ).eval()


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def compare(name: str, cases: dict[str, Callable[[], object]], rounds: int) -> None:
    """Time each case interleaved; print medians and ratios of the first to the others."""
    for function in cases.values():  # warm-up
        function()
    times: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(rounds):
        for label, function in cases.items():
            times[label].append(timed(function))
    medians = {label: statistics.median(values) for label, values in times.items()}
    first, *others = medians
    print(f"\n{name}")
    for label, value in medians.items():
        print(f"  {label:55s} {value * 1e3:9.1f} ms")
    for label in others:
        print(f"  ratio {first} / {label}: {medians[first] / medians[label]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lime-samples", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = make_network()
    x = torch.rand(32, 3, 32, 32)
    with torch.no_grad():
        predicted = net(x).argmax(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {tuple(x.shape)}")

    def forward_backward() -> None:
        inputs = x.clone().requires_grad_(True)
        net(inputs).gather(1, predicted[:, None]).sum().backward()

    def captum_gradcam() -> torch.Tensor:
        cam = LayerGradCam(net, net.layer("relu3")).attribute(
            x, target=predicted, relu_attributions=True
        )
        return LayerAttribution.interpolate(cam, (32, 32), interpolate_mode="bilinear")

    gradcam_cases = {
        "toolbox gradcam": lambda: gradcam(net, x),
        "Captum LayerGradCam + interpolate": captum_gradcam,
        "plain forward + backward": forward_backward,
    }
    try:
        from pytorch_grad_cam import GradCAM  # type: ignore[import-not-found]
        from pytorch_grad_cam.utils.model_targets import (  # type: ignore[import-not-found]
            ClassifierOutputTarget,
        )

        targets = [ClassifierOutputTarget(int(t)) for t in predicted]
        engine = GradCAM(model=net, target_layers=[net.layer("relu3")])
        gradcam_cases["pytorch-grad-cam GradCAM"] = lambda: engine(input_tensor=x, targets=targets)
    except ImportError:
        print("(pytorch-grad-cam is not installed: skipped)")
    compare("Grad-CAM, 32 images 3x32x32", gradcam_cases, args.rounds)

    window = dict(sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4))
    compare(
        "Occlusion sensitivity, 8x8 mask, stride 4",
        {
            "toolbox occlusion_sensitivity": lambda: occlusion_sensitivity(
                net, x, mask_size=8, stride=4, baseline=0.0
            ),
            "Captum Occlusion (perturbations_per_eval=1)": lambda: Occlusion(net).attribute(
                x, target=predicted, baselines=0.0, **window
            ),
        },
        args.rounds,
    )

    segments = _grid((32, 32), 16)
    mask = segments[None, None].expand(32, 3, 32, 32)
    samples = args.lime_samples

    def captum_lime(per_eval: int) -> Callable[[], object]:
        return lambda: Lime(net).attribute(
            x, target=predicted, feature_mask=mask, baselines=0.0, n_samples=samples,
            perturbations_per_eval=per_eval,
        )  # fmt: skip

    compare(
        f"Image LIME, 16 grid segments, {samples} samples per image",
        {
            "toolbox image_lime": lambda: image_lime(
                net, x, num_features=16, num_samples=samples, segmentation="grid", mask_value=0.0
            ),
            "Captum Lime (perturbations_per_eval=1)": captum_lime(1),
            "Captum Lime (perturbations_per_eval=64)": captum_lime(64),
        },
        max(1, args.rounds // 2),
    )


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore")  # Captum warns that batched LIME fits one model per image
    main()
