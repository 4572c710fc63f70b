"""ObjectDetector over torchvision's detection models: every architecture builds without
downloads, returns its losses in train mode and detections in eval mode, learns from
train(detector, data, "model"); detect() filters by score and class."""

import pytest
import torch

from deeptoolbox import datasets, train
from deeptoolbox.errors import InputSizeError, OptionError
from deeptoolbox.training import TrainingOptions
from deeptoolbox.vision import (
    BoxLabelDatastore,
    BoxLabelImageDatastore,
    ObjectDetector,
    detect,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: threads on a shared CPU only wait for each other
    yield
    torch.set_num_threads(threads)


def _batch(n=2, size=64, seed=0):
    data = datasets.detection_shapes(n, image_size=size, seed=seed)
    ds = BoxLabelImageDatastore(data.images, BoxLabelDatastore.from_shapes(data))
    return ds.collate_fn([ds[i] for i in range(n)]), data


@pytest.mark.parametrize("architecture, backbone, size, losses", [
    ("fcos", "small", 64, {"classification", "bbox_regression", "bbox_ctrness"}),
    ("retinanet", "small", 64, {"classification", "bbox_regression"}),
    ("fasterrcnn", "small", 64, {"loss_classifier", "loss_box_reg", "loss_objectness",
                                 "loss_rpn_box_reg"}),
    ("fcos", "resnet18", 64, {"classification", "bbox_regression", "bbox_ctrness"}),
    ("ssdlite", "small", 96, {"classification", "bbox_regression"}),
])  # fmt: skip
def test_every_architecture_gives_losses_then_detections(architecture, backbone, size, losses):
    torch.manual_seed(0)
    (images, targets), data = _batch(size=size)
    detector = ObjectDetector(list(data.classes), architecture, backbone=backbone,
                              input_size=(size, size))  # fmt: skip
    found = detector.train()(images, targets)
    assert set(found) == losses and all(v.dim() == 0 and torch.isfinite(v) for v in found.values())
    sum(found.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in detector.parameters())
    with torch.no_grad(), detector.score_threshold(0.0):
        out = detector.eval()(images)
    assert len(out) == 2 and all(set(d) == {"boxes", "scores", "labels"} for d in out)
    labels = torch.cat([d["labels"] for d in out])
    assert labels.numel() and labels.min() >= 0 and labels.max() < 3  # background removed


def test_training_with_train_fits_the_boxes_of_a_few_images():
    """A few images learnt by heart: the detector finds their boxes afterwards."""
    torch.manual_seed(0)
    data = datasets.detection_shapes(8, image_size=48, objects=(1, 2), seed=1)
    ds = BoxLabelImageDatastore(data.images, BoxLabelDatastore.from_shapes(data))
    detector = ObjectDetector(list(data.classes), input_size=48)
    options = TrainingOptions(solver="adam", initial_learn_rate=5e-3, max_epochs=60,
                              mini_batch_size=8, verbose=False, seed=0)  # fmt: skip
    result = train(detector, ds, "model", options)
    epochs = result.history.epochs
    assert epochs[-1]["loss"] < 0.5 * epochs[0]["loss"]
    found = detect(detector, ds, threshold=0.3)
    assert not detector.training
    hits = 0
    from torchvision.ops import box_iou

    for result_i, truth in zip(found, data.boxes, strict=True):
        if len(result_i["boxes"]):
            overlap = box_iou(torch.from_numpy(truth), result_i["boxes"])
            hits += int((overlap.max(1).values > 0.5).sum())
    assert hits >= 0.7 * sum(len(b) for b in data.boxes)


def test_detect_keeps_scores_above_the_threshold_and_the_classes_asked_for():
    torch.manual_seed(0)
    (images, _), data = _batch()
    detector = ObjectDetector(list(data.classes), input_size=64)
    everything = detect(detector, images, threshold=0.0)
    high = detect(detector, images, threshold=0.1)
    for low_i, high_i in zip(everything, high, strict=True):
        assert (high_i["scores"] >= 0.1).all()
        assert len(high_i["scores"]) == int((low_i["scores"] >= 0.1).sum())
        assert high_i["names"] == [data.classes[k] for k in high_i["labels"].tolist()]
    squares = detect(detector, images, threshold=0.0, classes=["square"])
    assert all(set(d["names"]) <= {"square"} for d in squares)
    assert sum(len(d["names"]) for d in squares) == sum(
        d["names"].count("square") for d in everything)  # fmt: skip
    one = detect(detector, (images[0] * 255).to(torch.uint8), threshold=0.0)
    assert len(one) == 1


def test_bad_input_names_the_problem():
    with pytest.raises(OptionError, match="not trained on class\\(es\\) \\['dog'\\].*\\['cat'\\]"):
        detect(ObjectDetector(["cat"], input_size=32), torch.rand(3, 32, 32), classes="dog")
    with pytest.raises(
        OptionError, match=r"image 1 is a float image with values in \[0, 255\].*255"
    ):
        detect(
            ObjectDetector(["cat"], input_size=32),
            [torch.rand(3, 32, 32), torch.full((3, 32, 32), 255.0) * torch.rand(3, 32, 32).round()],
        )
    with pytest.raises(OptionError, match="`architecture` must be one of"):
        ObjectDetector(["a"], "yolo")
    with pytest.raises(OptionError, match="`backbone` must be one of"):
        ObjectDetector(["a"], backbone="vgg")
    with pytest.raises(OptionError, match="distinct class names"):
        ObjectDetector(["a", "a"])
    detector = ObjectDetector(["a", "b"], input_size=32).train()
    with pytest.raises(InputSizeError, match="in train mode the detector needs targets"):
        detector(torch.rand(1, 3, 32, 32))
    with pytest.raises(InputSizeError, match="target 0 has labels \\[2\\].*0..1"):
        detector(torch.rand(1, 3, 32, 32), [{"boxes": torch.tensor([[0.0, 0, 4, 4]]),
                                             "labels": torch.tensor([2])}])  # fmt: skip
    with pytest.raises(InputSizeError, match="image 0 is \\(1, 32, 32\\)"):
        detector(torch.rand(1, 1, 32, 32), [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0)}])
