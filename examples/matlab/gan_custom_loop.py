"""MATLAB example "Train Generative Adversarial Network (GAN)", ported: a custom training loop.

MATLAB trains a generator and a discriminator with ``dlfeval`` / ``dlgradient`` /
``adamupdate`` in its own loop over a ``minibatchqueue``, with label flipping and a
``trainingProgressMonitor``. This port trains a small GAN on scikit-learn's bundled 8x8 digits
(no download) with the same loop in PyTorch; each line carries the MATLAB call it replaces
(see docs/custom-training-loops.md for the whole mapping). ``dtb.train_gan`` does all of this
in one call.

Run: ``python examples/matlab/gan_custom_loop.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

import deeptoolbox as dtb
from deeptoolbox import data, datasets
from deeptoolbox import layers as L

NUM_LATENT = 16


def build_generator() -> dtb.Network:
    return dtb.Network([
        L.FeatureInput(NUM_LATENT),  # MATLAB: featureInputLayer(numLatentInputs)
        L.Dense(32 * 2 * 2),  # MATLAB: projectAndReshapeLayer([4 4 512]) (a Dense, then a Reshape)
        L.Reshape((32, 2, 2)),
        L.TransposedConv2d(16, 4, stride=2, cropping=1),
        # MATLAB: transposedConv2dLayer(5, 256, Cropping="same")  (2x2 -> 4x4)
        L.BatchNorm(),  # MATLAB: batchNormalizationLayer
        L.ReLU(),  # MATLAB: reluLayer
        L.TransposedConv2d(1, 4, stride=2, cropping=1),
        # MATLAB: transposedConv2dLayer(5, 3, Stride=2, Cropping="same")  (4x4 -> 8x8)
        L.Tanh(),  # MATLAB: tanhLayer
    ], name="generator")  # fmt: skip


def build_discriminator() -> dtb.Network:
    return dtb.Network([
        L.ImageInput((1, 8, 8)),  # MATLAB: imageInputLayer(inputSize, Normalization="none")
        L.Dropout(0.2),  # MATLAB: dropoutLayer(dropoutProb)
        # MATLAB: convolution2dLayer(5, 64, Stride=2, Padding="same")
        L.Conv2d(16, 4, stride=2, padding=1),
        L.LeakyReLU(0.2),  # MATLAB: leakyReluLayer(scale)
        # MATLAB: convolution2dLayer(5, 128, Stride=2, Padding="same")
        L.Conv2d(32, 4, stride=2, padding=1),
        L.BatchNorm(),  # MATLAB: batchNormalizationLayer
        L.LeakyReLU(0.2),  # MATLAB: leakyReluLayer(scale)
        L.Flatten(),
        L.Dense(1),  # MATLAB: convolution2dLayer(4, 1)  (one score; the loss applies the sigmoid)
    ], name="discriminator")  # fmt: skip


def model_loss(net_g, net_d, x, z, flip_probability):
    """Losses of both networks, as MATLAB's modelLoss evaluated by dlfeval."""
    x_generated = net_g(z)  # MATLAB: [XGenerated, stateG] = forward(netG, Z);
    logit_real = net_d(x)  # MATLAB: YReal = forward(netD, X);
    logit_generated = net_d(x_generated.detach())  # MATLAB: YGenerated = forward(netD, XGenerated);
    target_real = torch.ones_like(logit_real)
    flip = (
        torch.rand_like(target_real) < flip_probability
    )  # MATLAB: idx = rand(1, numObservations) < flipProb;
    target_real[flip] = 0  # MATLAB: YReal(:, idx) = 1 - YReal(:, idx);  (flips the real labels)
    loss_d = F.binary_cross_entropy_with_logits(logit_real, target_real) + (
        F.binary_cross_entropy_with_logits(logit_generated, torch.zeros_like(logit_generated))
    )  # MATLAB: lossD = -mean(log(YReal)) - mean(log(1 - YGenerated));
    logit_for_g = net_d(x_generated)
    loss_g = F.binary_cross_entropy_with_logits(logit_for_g, torch.ones_like(logit_for_g))
    # MATLAB: lossG = -mean(log(YGenerated));
    score_d = (torch.sigmoid(logit_real).mean() + (1 - torch.sigmoid(logit_generated)).mean()) / 2
    # MATLAB: scoreD = (mean(YReal) + mean(1 - YGenerated)) / 2;
    score_g = torch.sigmoid(logit_generated).mean()  # MATLAB: scoreG = mean(YGenerated);
    return loss_g, loss_d, score_g, score_d


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--output", default=None, help="folder for the progress PNG")
    args = parser.parse_args(argv)
    torch.manual_seed(0)  # MATLAB: rng(0)

    images, _ = datasets.digits()
    ds = data.ArrayDatastore(
        images
    )  # MATLAB: imds = imageDatastore(...); augimds = augmentedImageDatastore(...)

    def preprocess_mini_batch(observations):  # MATLAB: function X = preprocessMiniBatch(data)
        return (
            data.default_collate(observations) * 2 - 1
        )  # MATLAB: X = rescale(X, -1, 1, InputMin=0, InputMax=255);

    mbq = data.loader(ds, batch_size=64, shuffle=True, seed=0, drop_last=True,
                      batch_function=preprocess_mini_batch)  # fmt: skip
    # MATLAB: mbq = minibatchqueue(augimds, MiniBatchSize=128, PartialMiniBatch="discard",
    # MATLAB:     MiniBatchFcn=@preprocessMiniBatch, MiniBatchFormat="SSCB");
    net_g, net_d = (
        build_generator(),
        build_discriminator(),
    )  # MATLAB: netG = dlnetwork(layersG); ...
    device = dtb.best_device()  # MATLAB: canUseGPU
    net_g.to(device), net_d.to(device)  # MATLAB: (minibatchqueue's OutputEnvironment="auto")
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=0.002, betas=(0.5, 0.999))
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=0.002, betas=(0.5, 0.999))
    # MATLAB: trailingAvgG = []; trailingAvgSqG = []; ... learnRate = 0.0002;
    # MATLAB: gradientDecayFactor = 0.5; squaredGradientDecayFactor = 0.999;
    z_validation = torch.randn(25, NUM_LATENT, device=device)
    # MATLAB: ZValidation = randn(numLatentInputs, numValidationImages, "single");
    # MATLAB:     ZValidation = dlarray(ZValidation, "CB");
    output = Path(args.output or tempfile.mkdtemp(prefix="gan-"))
    monitor = dtb.TrainingProgressMonitor(metrics=["generator_score", "discriminator_score"],
                                          info=["epoch", "iteration"],
                                          path=output / "gan-progress.png")  # fmt: skip
    # MATLAB: monitor = trainingProgressMonitor(Metrics=["GeneratorScore","DiscriminatorScore"],
    # MATLAB:     Info=["Epoch","Iteration"], XLabel="Iteration");
    monitor.group_subplot("score", ["generator_score", "discriminator_score"])
    # MATLAB: groupSubPlot(monitor, Score=["GeneratorScore","DiscriminatorScore"])
    real_mean = torch.from_numpy(images).mean(0) * 2 - 1
    with torch.no_grad():
        start_distance = float((net_g.eval()(z_validation).mean(0).cpu() - real_mean).abs().mean())

    iteration = 0
    net_g.train(), net_d.train()
    for epoch in range(1, args.epochs + 1):  # MATLAB: while epoch < numEpochs && ~monitor.Stop
        for x in mbq:  # MATLAB: shuffle(mbq); while hasdata(mbq); X = next(mbq);
            iteration += 1
            x = x.to(device)
            z = torch.randn(len(x), NUM_LATENT, device=device)
            # MATLAB: Z = randn(numLatentInputs, miniBatchSize, "single"); Z = dlarray(Z, "CB");
            loss_g, loss_d, score_g, score_d = model_loss(net_g, net_d, x, z, 0.35)
            # MATLAB: [~,~,gradientsG,gradientsD,stateG,scoreG,scoreD] = dlfeval(@modelLoss, netG,
            # MATLAB:     netD, X, Z, flipProb);
            optimizer_g.zero_grad()  # (the generator first: its loss reads netD's weights)
            # MATLAB: gradientsG = dlgradient(lossG, netG.Learnables, RetainData=true);
            loss_g.backward()
            optimizer_g.step()
            # MATLAB: [netG, trailingAvgG, trailingAvgSqG] = adamupdate(netG, gradientsG, ...);
            optimizer_d.zero_grad()  # (drops what lossG left in netD's gradients)
            loss_d.backward()  # MATLAB: gradientsD = dlgradient(lossD, netD.Learnables);
            optimizer_d.step()
            # MATLAB: [netD, trailingAvg, trailingAvgSqD] = adamupdate(netD, gradientsD, ...);
            monitor.record_metrics(iteration, generator_score=score_g.item(),
                                   discriminator_score=score_d.item())  # fmt: skip
            # MATLAB: recordMetrics(monitor, iteration, GeneratorScore=extractdata(scoreG),
            # MATLAB:     DiscriminatorScore=extractdata(scoreD));
            monitor.update_info(epoch=epoch, iteration=iteration)
            # MATLAB: updateInfo(monitor, Epoch=epoch, Iteration=iteration);
        monitor.progress = (
            100 * epoch / args.epochs
        )  # MATLAB: monitor.Progress = 100*iteration/numIterations;
        if monitor.stop:  # MATLAB: ~monitor.Stop
            break
    monitor.save()

    net_g.eval()
    with torch.no_grad():
        generated = net_g(
            z_validation
        ).cpu()  # MATLAB: XGeneratedValidation = predict(netG, ZValidation);
    images_out = (
        (generated + 1) / 2
    ).numpy()  # MATLAB: I = imtile(extractdata(XGeneratedValidation)); I = rescale(I);
    end_distance = float((generated.mean(0) - real_mean).abs().mean())
    print(f"{iteration} iterations; last scores: generator {score_g.item():.3f}, "
          f"discriminator {score_d.item():.3f}")  # fmt: skip
    print(f"mean image distance to the data: {start_distance:.3f} before, {end_distance:.3f} after")
    return {
        "iterations": iteration,
        "generated": images_out,
        "start_distance": start_distance,
        "end_distance": end_distance,
        "generator_score": score_g.item(),
        "discriminator_score": score_d.item(),
        "progress_plot": output / "gan-progress.png",
    }


if __name__ == "__main__":
    main()
