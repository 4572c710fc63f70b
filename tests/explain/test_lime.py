"""LIME for images, sequences and features: exact on linear models, agrees with Captum."""

import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import Lime
from explain_nets import RegionNet, SpanNet, region_mask

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.errors import OptionError
from deeptoolbox.explain import LimeExplanation, image_lime, lime


def linear_image_net() -> Network:
    torch.manual_seed(0)
    return Network([L.ImageInput((2, 8, 8)), L.Flatten(), L.Dense(3, name="fc")])


def exact_segment_weights(net, x, segments, target):
    """For a linear network and zero fill, segment s contributes sum_{p in s} a_p x_p."""
    a = net.layer("fc").weight.detach()[target].view(2, 8, 8)
    contribution = (a * x).sum(0)
    return torch.stack([contribution[segments == s].sum() for s in range(int(segments.max()) + 1)])


def test_image_lime_is_exact_on_a_linear_network_and_agrees_with_captum():
    net = linear_image_net()
    x = torch.randn(2, 2, 8, 8)
    result = image_lime(net, x, target=1, num_features=16, num_samples=300,
                        segmentation="grid", mask_value=0.0, ridge=0.0)  # fmt: skip
    assert isinstance(result, LimeExplanation)
    assert result.map.shape == (2, 8, 8) and result.weights.shape == (2, 16)
    assert result.segments.shape == (2, 8, 8) and int(result.segments.max()) == 15
    for i in range(2):
        exact = exact_segment_weights(net, x[i], result.segments[i], 1)
        torch.testing.assert_close(result.weights[i], exact, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(result.map[i], result.weights[i][result.segments[i]])
        captum = Lime(net.eval(), interpretable_model=SkLearnLinearRegression()).attribute(
            x[i : i + 1], target=1, feature_mask=result.segments[i][None, None].expand(1, 2, 8, 8),
            baselines=0.0, n_samples=300, return_input_shape=False,
        )  # fmt: skip
        torch.testing.assert_close(result.weights[i], captum[0].float(), atol=1e-3, rtol=1e-3)


def test_given_segmentation_tensor_and_reproducible_seed():
    net = linear_image_net()
    x = torch.randn(1, 2, 8, 8)
    segments = torch.zeros(8, 8, dtype=torch.long)
    segments[:, 4:] = 7  # two segments, numbered 0 and 7: renumbered 0, 1
    result = image_lime(net, x, segmentation=segments, num_samples=64)
    assert result.weights.shape == (1, 2)
    again = image_lime(net, x, segmentation=segments, num_samples=64)
    torch.testing.assert_close(result.map, again.map)


def test_slic_superpixels():
    net = linear_image_net()
    torch.manual_seed(0)
    x = torch.rand(2, 2, 8, 8)
    x[:, :, :, 4:] += 3  # two flat halves: superpixels follow the edge
    result = image_lime(net, x, num_features=4, num_samples=64, segmentation="slic")
    for segments in result.segments:
        assert 2 <= int(segments.max()) + 1 <= 8
        for s in segments.unique():
            columns = torch.nonzero(segments == s)[:, 1]
            assert bool((columns < 4).all()) or bool((columns >= 4).all())


def test_known_region_and_known_time_span():
    region = region_mask()
    net = RegionNet(region)
    x = torch.randn(1, 1, 16, 16)
    result = image_lime(net, x, num_features=16, num_samples=512, segmentation="grid")
    touched = torch.stack([(region & (result.segments[0] == s)).any() for s in range(16)])
    weights = result.weights[0].abs()
    assert weights[~touched].sum() / weights.sum() < 0.1
    span = torch.zeros(32, dtype=torch.bool)
    span[8:16] = True
    seq = image_lime(SpanNet(span), torch.randn(1, 32, 2), num_features=8, num_samples=256,
                     segmentation="grid")  # fmt: skip
    assert seq.map.shape == (1, 32)
    weights = seq.weights[0].abs()
    assert weights[2:4].sum() / weights.sum() > 0.9  # spans of 4 steps: 8..15 are spans 2, 3


def test_tabular_lime_recovers_linear_effects():
    torch.manual_seed(0)
    net = Network([L.FeatureInput(5), L.Dense(2, name="fc"), L.Softmax()], classes=["n", "p"])
    x = torch.randn(3, 5)
    baseline = torch.tensor([0.5, -1.0, 0.0, 2.0, 0.1])
    result = lime(net, x, target="p", baseline=baseline, num_samples=400, ridge=0.0)
    weight = net.layer("fc").weight.detach()[1]
    torch.testing.assert_close(result.weights, weight * (x - baseline), atol=1e-4, rtol=1e-4)
    assert result.segments is None and result.map.shape == (3, 5)
    single = lime(net, x[0], target="p", baseline=baseline, num_samples=400, ridge=0.0)
    torch.testing.assert_close(single.map, result.map[0], atol=1e-4, rtol=1e-4)


def test_errors():
    net = linear_image_net()
    x = torch.randn(1, 2, 8, 8)
    with pytest.raises(OptionError, match="`segmentation` must be 'slic', 'grid'"):
        image_lime(net, x, segmentation="quickshift")
    with pytest.raises(OptionError, match=r"must have size \(8, 8\)"):
        image_lime(net, x, segmentation=torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(OptionError, match="`num_samples` must be an int >= 2"):
        image_lime(net, x, num_samples=1)
    with pytest.raises(OptionError, match="Use lime"):
        image_lime(Network([L.FeatureInput(3), L.Dense(2)]), torch.randn(1, 3))
    with pytest.raises(OptionError, match="Use image_lime"):
        lime(net, x)
    span = torch.ones(10, dtype=torch.bool)
    with pytest.raises(OptionError, match="for sequences use 'grid'"):
        image_lime(SpanNet(span), torch.randn(1, 10, 2), segmentation="slic")
    with pytest.raises(OptionError, match=r"`baseline` must have size \(3,\)"):
        lime(Network([L.FeatureInput(3), L.Dense(2)]), torch.randn(1, 3), baseline=torch.ones(4))


def test_the_result_is_the_map_as_a_tensor_like_every_explainers_result(tmp_path):
    import copy
    import pickle

    from deeptoolbox.explain import occlusion_sensitivity, plot_explanations

    net = linear_image_net()
    x = torch.randn(2, 2, 8, 8)
    result = image_lime(net, x, num_features=4, num_samples=40, segmentation="grid")
    occlusion = occlusion_sensitivity(net, x, mask_size=2, stride=2)
    assert isinstance(result, torch.Tensor) and result.shape == occlusion.shape == (2, 8, 8)
    assert torch.equal(result, result.map) and type(result.map) is torch.Tensor
    assert type(result * 2) is torch.Tensor and torch.equal(result * 2, result.map * 2)
    for again in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result)):
        assert isinstance(again, LimeExplanation) and torch.equal(again.map, result.map)
        assert torch.equal(again.weights, result.weights)
        assert torch.equal(again.segments, result.segments)
    path = plot_explanations(x[:, :1], {"LIME": result, "occlusion": occlusion},
                             path=tmp_path / "maps.png")  # fmt: skip
    assert (tmp_path / "maps.png").stat().st_size > 1000 and path is not None
