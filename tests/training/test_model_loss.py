"""train(..., loss="model"): the model computes its own losses from per-observation targets
(lists of dicts, as torchvision's detection models take), moved to the device and with their
class labels matched to the model's classes by name."""

import pytest
import torch
from torch.utils.data import Dataset

from deeptoolbox.errors import OptionError
from deeptoolbox.training import TrainingOptions, loss_function, train


class CentreRegressor(torch.nn.Module):
    """Predicts one value per image; in train mode returns a dict of losses against the
    target dicts' "centre", in eval mode the predictions (as a detection model does)."""

    classes = ["a", "b"]

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.seen_labels: list[list[int]] = []

    def forward(self, images, targets=None):
        predicted = self.linear(images)[:, 0]
        if not self.training:
            return predicted
        assert targets is not None and isinstance(targets, list)
        self.seen_labels.append([int(t["labels"][0]) for t in targets])
        centre = torch.stack([t["centre"] for t in targets])
        return {"squared": ((predicted - centre) ** 2).mean(), "zero": predicted.sum() * 0}


class DictTargets(Dataset):
    """Observations (x, {"centre", "labels"}) with a collate that keeps the dicts a list."""

    def __init__(self, n: int, classes=("a", "b")) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=generator)
        self.centre = self.x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.3
        self.classes = list(classes)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        label = torch.tensor([i % 2])
        return self.x[i], {"centre": self.centre[i], "labels": label}

    @staticmethod
    def collate_fn(items):
        return torch.stack([x for x, _ in items]), [t for _, t in items]


def options(**kw):
    settings = {"solver": "adam", "initial_learn_rate": 0.05, "max_epochs": 30,
                "mini_batch_size": 16, "verbose": False, "seed": 0}  # fmt: skip
    return TrainingOptions(**{**settings, **kw})


def test_model_loss_trains_on_the_models_own_losses():
    net, data = CentreRegressor(), DictTargets(64)
    result = train(net, data, "model", options())
    first, last = result.history.epochs[0]["loss"], result.history.epochs[-1]["loss"]
    assert last < 0.05 * first
    net.eval()
    with torch.no_grad():
        error = (net(data.x) - data.centre).abs().max()
    assert float(error) < 0.2


def test_model_loss_validation_loss_is_the_models_loss_in_train_mode():
    net, data = CentreRegressor(), DictTargets(64)
    result = train(net, data, "model", options(validation_data=DictTargets(32),
                                               validation_frequency=4))  # fmt: skip
    valid = DictTargets(32)
    net.eval()
    with torch.no_grad():
        expected = float(((net(valid.x) - valid.centre) ** 2).mean())
    assert result.final_validation["loss"] == pytest.approx(expected, rel=1e-4)
    assert not net.training  # returned in eval mode, validation restored the modes


def test_detection_labels_are_matched_to_the_models_classes_by_name():
    net = CentreRegressor()
    train(net, DictTargets(8, classes=("b", "a")), "model", options(max_epochs=1, shuffle="never"))
    # data class 0 is "b" = model class 1; observation 0 has data label 0
    assert net.seen_labels[0][:2] == [1, 0]


def test_model_loss_refuses_metrics_and_a_model_that_returns_predictions():
    with pytest.raises(OptionError, match="metrics.*loss='model'"):
        train(CentreRegressor(), DictTargets(8), "model", options(metrics=["rmse"]))
    with pytest.raises(OptionError, match=r"Linear.forward takes \['input'\] \(no targets\)"):
        train(torch.nn.Linear(4, 1), (torch.zeros(8, 4), torch.zeros(8)), "model", options())

    class Predicts(torch.nn.Linear):
        def forward(self, x, targets=None):
            return super().forward(x)

    with pytest.raises(OptionError, match="returns a dict of scalar losses.*Received: Tensor"):
        train(Predicts(4, 1), (torch.zeros(8, 4), torch.zeros(8)), "model", options())
    assert float(loss_function("model")({"a": torch.tensor(2.0)}, None)) == 2.0
