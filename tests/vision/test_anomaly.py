"""Anomaly detection (visual inspection): the generated inspection data, PatchCore's coreset
and nearest-neighbour scores against brute force, PatchCore and FCDD on the generated
parts, thresholds, the metrics against scikit-learn, overlays and bad input."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score
from torch.utils.data import TensorDataset

from deeptoolbox import datasets
from deeptoolbox.errors import (
    DataError,
    InputSizeError,
    LayerNotFoundError,
    NotInitializedError,
    OptionError,
)
from deeptoolbox.training import TrainingOptions
from deeptoolbox.vision import (
    FCDDDetector,
    PatchCoreDetector,
    anomaly_map,
    anomaly_overlay,
    anomaly_scores,
    evaluate_anomaly_detection,
    fcdd_loss,
    fcdd_network,
    fit_threshold,
    greedy_coreset,
    is_anomaly,
    nearest_neighbor_distances,
    train_anomaly_detector,
)

SIZE = 48


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def parts():
    return {
        "train": datasets.inspection(40, 0, image_size=SIZE, seed=0),
        "validation": datasets.inspection(20, 0, image_size=SIZE, seed=1),
        "test": datasets.inspection(24, 24, image_size=SIZE, seed=2),
    }


@pytest.fixture(scope="module")
def patchcore(parts):
    detector = train_anomaly_detector(PatchCoreDetector(), parts["train"].images)
    fit_threshold(detector, parts["validation"].images, false_positive_rate=0.05)
    return detector


# --- the data ---------------------------------------------------------------------------


def test_inspection_data_is_reproducible_and_masks_mark_only_defects():
    a, b = (
        datasets.inspection(3, 6, image_size=32, seed=5),
        datasets.inspection(3, 6, image_size=32, seed=5),
    )
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert not np.array_equal(a.images, datasets.inspection(3, 6, image_size=32, seed=6).images)
    assert a.images.dtype == np.float32 and a.images.min() >= 0 and a.images.max() <= 1
    assert a.labels.tolist() == ["normal"] * 3 + ["scratch", "hole", "stain"] * 2
    assert not a.masks[:3].any() and a.masks[3:].any(axis=(1, 2)).all()
    # the defect changes the pixels under its mask: they differ from the texture around them
    for i in range(3, 9):
        inside, outside = a.images[i][:, a.masks[i]], a.images[i][:, ~a.masks[i]]
        gap = np.abs(inside.mean(axis=1) - outside.mean(axis=1)).max()
        assert gap > 0.05, a.labels[i]
    only_holes = datasets.inspection(0, 2, image_size=32, defects="hole")
    assert only_holes.labels.tolist() == ["hole", "hole"]
    assert only_holes.subset([1]).images.shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_normal": -1}, "n_normal"), ({"image_size": 8}, "image_size"),
     ({"defects": ["crack"]}, "defects"), ({"n_normal": 0, "n_anomalous": 0}, "at least one")],
)  # fmt: skip
def test_inspection_rejects_bad_options(kwargs, match):
    with pytest.raises(OptionError, match=match):
        datasets.inspection(**kwargs)


# --- coreset and nearest neighbours ----------------------------------------------------


def test_greedy_coreset_takes_the_farthest_point_at_every_step():
    features = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    chosen = greedy_coreset(features, 40, projection_dim=None, seed=3)
    assert chosen.shape == (40,) and len(set(chosen.tolist())) == 40
    distances = torch.cdist(features, features)
    for step in range(1, 40):
        to_chosen = distances[:, chosen[:step]].amin(dim=1)  # brute force, recomputed
        assert to_chosen[chosen[step]] == to_chosen.max()
    # the coreset covers every point within the last step's distance (the k-center bound)
    radius = distances[:, chosen[:-1]].amin(dim=1).max()
    assert distances[:, chosen].amin(dim=1).max() <= radius
    assert torch.equal(chosen, greedy_coreset(features, 40, projection_dim=None, seed=3))


def test_greedy_coreset_with_projection_still_spreads_out_and_checks_size():
    features = torch.randn(500, 300, generator=torch.Generator().manual_seed(1))
    chosen = greedy_coreset(features, 50, projection_dim=32)
    assert len(set(chosen.tolist())) == 50
    # farthest-point picks cover the set better than the same number of random points
    random = torch.randperm(500, generator=torch.Generator().manual_seed(2))[:50]
    cover = torch.cdist(features, features[chosen]).amin(dim=1).max()
    assert cover < torch.cdist(features, features[random]).amin(dim=1).max()
    with pytest.raises(OptionError, match=r"`size` must be an int in \[1, 500\]"):
        greedy_coreset(features, 501)


def test_nearest_neighbor_distances_equal_brute_force_cdist():
    generator = torch.Generator().manual_seed(4)
    queries, bank = (
        torch.randn(1000, 16, generator=generator),
        torch.randn(77, 16, generator=generator),
    )
    expected = torch.cdist(queries, bank).min(dim=1).values
    assert torch.allclose(
        nearest_neighbor_distances(queries, bank, chunk_size=64), expected, atol=1e-5
    )
    with pytest.raises(DataError, match="16 features, the bank 3"):
        nearest_neighbor_distances(queries, bank[:, :3])


# --- PatchCore --------------------------------------------------------------------------


def test_patchcore_memory_bank_is_the_coreset_of_the_training_patches(parts, patchcore):
    features = patchcore.patch_features(torch.as_tensor(parts["train"].images))
    n, d, h, w = features.shape
    assert (h, w) == (SIZE // 4, SIZE // 4) and d == 256
    assert patchcore.memory_bank.shape == (round(0.1 * n * h * w), d)
    rows = features.permute(0, 2, 3, 1).reshape(-1, d)
    # every memory patch is one of the training patches
    exact = torch.cdist(patchcore.memory_bank, rows, compute_mode="donot_use_mm_for_euclid_dist")
    assert exact.amin(dim=1).max() < 1e-5
    # the patch scores are the nearest-memory distances, brute force
    test = torch.as_tensor(parts["test"].images[-4:])
    queries = patchcore.patch_features(test).permute(0, 2, 3, 1).reshape(-1, d)
    brute = torch.cdist(queries, patchcore.memory_bank).min(dim=1).values.view(4, 1, h, w)
    assert torch.allclose(patchcore.patch_scores(test), brute, atol=1e-4)


def test_patchcore_finds_the_defects_on_the_generated_parts(parts, patchcore):
    test = parts["test"]
    m = evaluate_anomaly_detection(patchcore, test.images, test.labels, test.masks)
    assert m.image_auroc >= 0.9 and m.pixel_auroc >= 0.9  # issue 19's check; about 1.0 / 0.98
    maps = anomaly_map(patchcore, test.images)
    assert maps.shape == (48, SIZE, SIZE)
    scores = maps.flatten(1).amax(dim=1)
    assert np.allclose(m.scores, scores.numpy())
    assert m.image_auroc == pytest.approx(roc_auc_score(test.anomalous, scores.numpy()))
    assert m.pixel_auroc == pytest.approx(
        roc_auc_score(test.masks.ravel(), maps.numpy().ravel()), abs=1e-6
    )
    decided = (scores > patchcore.threshold).numpy()
    assert m.f1 == pytest.approx(f1_score(test.anomalous, decided))
    assert m.confusion_matrix.tolist() == [
        [int((~decided & ~test.anomalous).sum()), int((decided & ~test.anomalous).sum())],
        [int((~decided & test.anomalous).sum()), int((decided & test.anomalous).sum())],
    ]
    assert m.f1 > 0.8  # the threshold comes from 20 other normal parts
    assert torch.equal(is_anomaly(patchcore, test.images), scores > patchcore.threshold)


def test_fit_threshold_lets_the_asked_fraction_of_normal_images_through(parts, patchcore):
    normal = parts["validation"].images
    scores = anomaly_scores(patchcore, normal).numpy()
    threshold = fit_threshold(patchcore, normal, false_positive_rate=0.1)
    assert threshold == patchcore.threshold and threshold in scores
    assert (scores > threshold).mean() <= 0.1 and (scores >= threshold).mean() > 0.1 - 1e-9
    assert fit_threshold(patchcore, normal, false_positive_rate=0) == scores.max()
    fit_threshold(patchcore, normal, false_positive_rate=0.05)  # back to the fixture's
    with pytest.raises(OptionError, match="false_positive_rate"):
        fit_threshold(patchcore, normal, false_positive_rate=1.0)


def test_maps_are_upsampled_patch_scores_then_smoothed(parts):
    images = torch.as_tensor(parts["train"].images[:8])
    detector = train_anomaly_detector(PatchCoreDetector(smoothing_sigma=0), images)
    test = torch.as_tensor(parts["test"].images[-2:])
    expected = torch.nn.functional.interpolate(detector.patch_scores(test), size=(SIZE, SIZE),
                                               mode="bilinear", align_corners=False)  # fmt: skip
    assert torch.allclose(anomaly_map(detector, test), expected[:, 0])
    detector.smoothing_sigma = 2.0
    smoothed = anomaly_map(detector, test)
    assert smoothed.std() < expected.std()  # smoothing evens the map out...
    # ...and keeps its level
    assert smoothed.mean() == pytest.approx(float(expected.mean()), rel=0.05)


def test_training_reads_a_dataset_of_images_and_uint8_arrays(parts):
    images = torch.as_tensor(parts["train"].images[:6])
    from_dataset = train_anomaly_detector(
        PatchCoreDetector(), TensorDataset(images, torch.zeros(6))
    )
    from_tensor = train_anomaly_detector(PatchCoreDetector(), images)
    assert torch.equal(from_dataset.memory_bank, from_tensor.memory_bank)
    as_uint8 = (images * 255).round().to(torch.uint8).numpy()
    detector = train_anomaly_detector(PatchCoreDetector(), as_uint8)
    assert detector.image_size == (3, SIZE, SIZE)
    assert anomaly_map(detector, as_uint8[0]).shape == (1, SIZE, SIZE)


# --- FCDD -------------------------------------------------------------------------------


def test_fcdd_loss_is_small_for_low_normal_scores_and_high_anomalous_scores():
    low, high = torch.full((1, 1, 2, 2), 0.01), torch.full((1, 1, 2, 2), 5.0)
    normal, anomalous = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    assert fcdd_loss(low, normal) < fcdd_loss(high, normal)
    assert fcdd_loss(high, anomalous) < fcdd_loss(low, anomalous)
    score = np.sqrt(5.0**2 + 1) - 1  # the direct formulas
    assert float(fcdd_loss(high, normal)) == pytest.approx(score, rel=1e-5)
    assert float(fcdd_loss(high, anomalous)) == pytest.approx(-np.log(1 - np.exp(-score)), rel=1e-4)
    half = torch.zeros(1, 1, 8, 8)
    half[..., :4] = 1  # the left output column is anomalous, the right one normal
    expected = (score + -np.log(1 - np.exp(-score))) / 2
    assert float(fcdd_loss(high, half)) == pytest.approx(expected, rel=1e-4)


def test_fcdd_trained_from_scratch_finds_the_defects(parts):
    options = TrainingOptions(solver="adam", initial_learn_rate=1e-3, max_epochs=10,
                              mini_batch_size=16, verbose=False, seed=0)  # fmt: skip
    detector = FCDDDetector(fcdd_network(3, filters=(16, 32, 64)))
    train_anomaly_detector(detector, parts["train"].images, options)
    threshold = fit_threshold(detector, parts["validation"].images)
    test = parts["test"]
    m = evaluate_anomaly_detection(detector, test.images, test.labels, test.masks)
    assert m.threshold == threshold
    assert m.image_auroc >= 0.9 and m.pixel_auroc >= 0.9  # about 0.99 / 0.97


# --- bad input --------------------------------------------------------------------------


def test_images_of_another_size_than_trained_are_refused(parts, patchcore):
    with pytest.raises(
        InputSizeError,
        match=r"trained on images of size \(C, H, W\) = \(3, 48, 48\); received \(3, 32, 32\)",
    ):
        anomaly_map(patchcore, torch.rand(2, 3, 32, 32))
    with pytest.raises(InputSizeError, match=r"received \(1, 48, 48\)"):
        evaluate_anomaly_detection(patchcore, torch.rand(2, 1, SIZE, SIZE), [0, 1])
    with pytest.raises(NotInitializedError, match="not trained yet"):
        anomaly_map(PatchCoreDetector(), torch.rand(1, 3, SIZE, SIZE))
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        anomaly_map(patchcore, torch.rand(SIZE, SIZE))


def test_masks_and_labels_that_do_not_fit_the_images_are_refused(parts, patchcore):
    test = parts["test"]
    images, labels = test.images[20:28], test.labels[20:28]  # 4 normal, 4 anomalous
    with pytest.raises(
        DataError, match=r"`masks` must be \(N, H, W\) = \(8, 48, 48\).*\(8, 32, 32\)"
    ):
        evaluate_anomaly_detection(patchcore, images, labels, np.zeros((8, 32, 32), bool))
    with pytest.raises(DataError, match=r"\(8, 48, 48\).*\(7, 48, 48\)"):
        evaluate_anomaly_detection(patchcore, images, labels, test.masks[20:27])
    bad = test.masks[20:28].astype(np.uint8)
    bad[5, 0, 0] = 255
    with pytest.raises(DataError, match="mask 5 has values other than 0 and 1"):
        evaluate_anomaly_detection(patchcore, images, labels, bad)
    marked = test.masks[20:28].copy()
    marked[1, 3, 3] = True
    with pytest.raises(DataError, match="image 1 is labelled normal but its mask marks defect"):
        evaluate_anomaly_detection(patchcore, images, labels, marked)
    with pytest.raises(DataError, match=r"one label per image \(8 images\)"):
        evaluate_anomaly_detection(patchcore, images, labels[:5])
    with pytest.raises(DataError, match="both normal and anomalous"):
        evaluate_anomaly_detection(patchcore, images[:4], labels[:4])


def test_options_and_detectors_are_checked():
    with pytest.raises(LayerNotFoundError, match="no layer 'layer9'"):
        PatchCoreDetector(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)), layers=["layer9"])
    with pytest.raises(OptionError, match="`layers` must name"):
        PatchCoreDetector(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))
    with pytest.raises(OptionError, match="coreset_fraction"):
        PatchCoreDetector(coreset_fraction=0)
    with pytest.raises(OptionError, match="smoothing_sigma"):
        FCDDDetector(smoothing_sigma=-1)
    with pytest.raises(OptionError, match="anomaly detector"):
        anomaly_map(torch.nn.Identity(), torch.rand(1, 3, 8, 8))
    detector = train_anomaly_detector(PatchCoreDetector(), torch.rand(2, 3, 16, 16))
    with pytest.raises(NotInitializedError, match="fit_threshold"):
        is_anomaly(detector, torch.rand(1, 3, 16, 16))
    with pytest.raises(NotInitializedError, match="fit_threshold"):
        evaluate_anomaly_detection(detector, torch.rand(2, 3, 16, 16), [0, 1])


def test_a_torchvision_style_backbone_gives_features_from_named_modules():
    backbone = torch.nn.Sequential()
    backbone.add_module("layer1", torch.nn.Conv2d(3, 8, 3, stride=2, padding=1))
    backbone.add_module("layer2", torch.nn.Conv2d(8, 16, 3, stride=2, padding=1))
    detector = PatchCoreDetector(backbone, layers=["layer1", "layer2"], coreset_fraction=0.5)
    train_anomaly_detector(detector, torch.rand(2, 3, 16, 16))
    assert detector.memory_bank.shape == (64, 24)  # half of 2 x 8 x 8 patches; 8 + 16 features


# --- overlay ----------------------------------------------------------------------------


def test_anomaly_overlay_blends_a_heat_map_over_the_image():
    image = torch.rand(3, 6, 6)
    heat = torch.linspace(0, 1, 36).view(6, 6)
    unchanged = anomaly_overlay(image, heat, blend=0.0)
    assert torch.equal(unchanged, (image * 255).round().to(torch.uint8))
    import matplotlib

    colours = anomaly_overlay(torch.zeros(6, 6), heat, blend=1.0, map_range=(0, 2))
    expected = matplotlib.colormaps["jet"]((heat / 2).numpy())[..., :3]
    assert np.allclose(colours.permute(1, 2, 0).numpy(), np.round(expected * 255), atol=1)
    with pytest.raises(DataError, match=r"map is \(5, 6\) but the image is \(6, 6\)"):
        anomaly_overlay(image, heat[:5])
    with pytest.raises(OptionError, match="blend"):
        anomaly_overlay(image, heat, blend=2)
