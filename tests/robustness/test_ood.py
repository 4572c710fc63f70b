"""DistributionDiscriminator on shapes against shifted data."""

import pytest
import torch

from conftest import make_shapes
from deeptoolbox.errors import OptionError
from deeptoolbox.robustness import DistributionDiscriminator


@pytest.fixture(scope="module")
def held_out():
    x, _ = make_shapes(300, seed=7)
    return x


def _shifted(held_out):
    other, _ = make_shapes(300, kinds=("cross", "stripes"), seed=8)
    noise = torch.rand(300, 1, 12, 12)
    return {"other shapes": other, "noise": noise, "inverted": 1 - held_out, "dim": 0.3 * held_out}


# Softmax-based scores are known to be over-confident on noise and inverted images (large
# activations); HBOS on activations catches those. Each method must flag the shifts it is
# designed for, well above chance (0.5).
EXPECTED = {
    "baseline": {"other shapes": 0.7, "dim": 0.7},
    "odin": {"other shapes": 0.7, "dim": 0.7},
    "energy": {"other shapes": 0.7, "dim": 0.7},
    "hbos": {"noise": 0.9, "inverted": 0.9, "dim": 0.9},
}


@pytest.mark.parametrize("method", list(EXPECTED))
def test_methods_separate_in_from_shifted_data(shapes_net, held_out, method):
    net, x, _ = shapes_net
    options = {"noise": 0.002} if method == "odin" else {}
    discriminator = DistributionDiscriminator(net, x, method=method, **options)
    shifted = _shifted(held_out)
    for name, minimum in EXPECTED[method].items():
        evaluation = discriminator.evaluate(held_out, shifted[name])
        assert evaluation.auroc > minimum, f"{method} on {name}: AUROC {evaluation.auroc:.3f}"
        assert 0 <= evaluation.fpr_at_95_tpr <= 1


def test_hbos_flags_other_shapes(shapes_net, held_out):
    net, x, _ = shapes_net
    discriminator = DistributionDiscriminator(net, x, method="hbos", layers=["relu_1", "relu_2"])
    other = _shifted(held_out)["other shapes"]
    assert discriminator.evaluate(held_out, other).auroc > 0.75


def test_threshold_gives_the_requested_true_positive_rate(shapes_net, held_out):
    net, x, _ = shapes_net
    discriminator = DistributionDiscriminator(net, x, method="energy", true_positive_rate=0.9)
    accepted = float(discriminator.is_in_distribution(held_out).float().mean())
    assert abs(accepted - 0.9) < 0.06
    scores = discriminator.scores(x)
    assert abs(float((scores >= discriminator.threshold).float().mean()) - 0.9) < 0.01
    evaluation = discriminator.evaluate(held_out, torch.rand(100, 1, 12, 12))
    assert abs(evaluation.true_positive_rate - accepted) < 1e-6


def test_default_hbos_layer_datasets_and_histogram_png(shapes_net, held_out, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    net, x, y = shapes_net
    dataset = torch.utils.data.TensorDataset(x, y)
    discriminator = DistributionDiscriminator(net, dataset, method="hbos")
    assert discriminator.layers == ["globalavgpool_1"]
    evaluation = discriminator.evaluate(held_out, torch.rand(200, 1, 12, 12))
    evaluation.plot().savefig(tmp_path / "scores.png")
    assert (tmp_path / "scores.png").stat().st_size > 1000


def test_bad_options(shapes_net):
    net, x, _ = shapes_net
    with pytest.raises(OptionError, match="method"):
        DistributionDiscriminator(net, x, method="mahalanobis")
    with pytest.raises(OptionError, match="true_positive_rate"):
        DistributionDiscriminator(net, x, true_positive_rate=1.5)
    with pytest.raises(OptionError, match="no layer named 'nope'"):
        DistributionDiscriminator(net, x, method="hbos", layers=["nope"])
    with pytest.raises(OptionError, match="list"):
        DistributionDiscriminator(net, [1, 2, 3])
