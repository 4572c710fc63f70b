"""train_gan() and the GAN digits example."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from deeptoolbox import Network, load
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.training import GanOptions, train_gan

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gan_digits.py"


@pytest.mark.slow
def test_gan_learns_a_one_dimensional_distribution():
    torch.manual_seed(0)
    generator = Network([L.FeatureInput(4), L.Dense(16), L.ReLU(), L.Dense(1)])
    discriminator = Network(
        [L.FeatureInput(1), L.Dense(16), L.LeakyReLU(0.2), L.Dense(1), L.Sigmoid()]
    )
    real = torch.randn(2048, 1) * 0.5 + 3.0
    before = float(generator(torch.randn(512, 4)).detach().mean())
    options = GanOptions(
        max_epochs=15,
        mini_batch_size=128,
        generator_learn_rate=5e-3,
        discriminator_learn_rate=5e-3,
        verbose=False,
        seed=0,
    )
    result = train_gan(generator, discriminator, real, options)
    samples = result.generate(2000, seed=1)
    assert abs(float(samples.mean()) - 3.0) < 0.5 < abs(before - 3.0)
    assert len(result.history.epochs) == 15
    assert set(result.history.iterations[0]) >= {
        "generator_loss",
        "discriminator_loss",
        "real_score",
        "fake_score",
    }
    assert "forward" not in vars(discriminator.layer(discriminator.output_names[0]))


def test_gan_options_are_validated():
    with pytest.raises(OptionError, match="`generator_learn_rate`"):
        GanOptions(generator_learn_rate=0)
    with pytest.raises(OptionError, match="latent size"):
        train_gan(
            torch.nn.Linear(2, 2),
            torch.nn.Linear(2, 1),
            torch.zeros(4, 2),
            GanOptions(verbose=False),
        )


def test_gan_digits_example_runs(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gan_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    paths = module.main(["--epochs", "1", "--count", "9", "--output", str(tmp_path)])
    images = np.load(paths["images"])
    assert images.shape == (9, 1, 8, 8) and images.min() >= 0 and images.max() <= 16
    assert paths["progress"].stat().st_size > 5_000 and paths["grid"].exists()
    assert load(paths["generator"])(torch.randn(2, 16)).shape == (2, 1, 8, 8)
    assert str(paths["grid"].resolve()) in capsys.readouterr().out
