"""The public surface of deeptoolbox.training."""

import deeptoolbox.training as training


def test_every_public_name_resolves_with_a_documented_example():
    missing = []
    for name in training.__all__:
        obj = getattr(training, name)
        doc = obj.__doc__ or ""
        if not name[0].isalpha() or not ("Example" in doc or ">>>" in doc):
            missing.append(name)
    assert missing == []
    assert {
        "train",
        "TrainingOptions",
        "TrainingResult",
        "evaluate",
        "confusion_chart",
        "train_gan",
        "TrainingProgressMonitor",
        "TrainingError",
        "launch",
    } <= set(training.__all__)
