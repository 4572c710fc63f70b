"""predict/classify take datastores directly: their collate, augmentation off, mode restored."""

import numpy as np
import pytest
import torch
from PIL import Image

import deeptoolbox as dtb
from deeptoolbox import layers as L
from deeptoolbox.data import (
    ArrayDatastore,
    ImageAugmenter,
    ImageDatastore,
    SequenceDatastore,
    TabularDatastore,
    TextDatastore,
    combine,
)


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(10):
        folder = tmp_path / ("ab"[i % 2])
        folder.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tmp_path


def image_net():
    torch.manual_seed(0)
    return dtb.Network(
        [L.ImageInput((3, 8, 8)), L.Flatten(), L.Dense(2), L.Softmax()], classes=["a", "b"]
    )


def test_classify_image_datastore_without_augmentation(image_folder):
    aug = ImageAugmenter(flip="both", rotation=30, color_jitter=0.5)
    ds = ImageDatastore(image_folder, augmenter=aug)
    net = image_net()
    reference = torch.stack([ds.eval()[i][0] for i in range(len(ds))])
    ds.train()
    labels, scores = dtb.classify(net, ds, batch_size=3)
    expected = dtb.predict(net, reference)
    assert torch.allclose(scores, expected, atol=1e-6)  # no random flips during inference
    assert labels.tolist() == np.asarray(["a", "b"])[expected.argmax(1).numpy()].tolist()
    assert ds.training  # mode restored


def test_predict_on_padded_sequence_dicts_matches_manual_padding():
    torch.manual_seed(0)
    seqs = [np.random.rand(t, 3).astype(np.float32) for t in (4, 6, 5)]
    net = dtb.Network([L.SequenceInput(3), L.LSTM(5, output_mode="last"), L.Dense(2)])
    ds = SequenceDatastore(seqs, ["x", "y", "x"], sequence_length=6, padding="left")
    padded = np.stack([np.concatenate([np.zeros((6 - len(s), 3), np.float32), s]) for s in seqs])
    assert torch.allclose(dtb.predict(net, ds, batch_size=2), dtb.predict(net, padded), atol=1e-6)


def test_mask_as_input_feeds_a_two_input_network():
    texts = ["good film", "bad plot and bad actors", "fine"]
    ds = TextDatastore(texts, ["pos", "neg", "pos"], mask_as_input=True)
    net = dtb.Network(
        [
            L.SequenceInput(1, name="tokens"),
            L.Embedding(len(ds.tokenizer), 8, padding_index=0),
            L.SelfAttention(2, has_padding_mask=True, name="attn"),
            L.GlobalAvgPool(),
            L.Dense(2),
            L.Softmax(),
        ],
        classes=ds.classes,
    )
    net.add_layers(L.SequenceInput(1, name="mask"))
    net.connect("mask", "attn/mask")
    labels, scores = dtb.classify(net, ds)
    assert scores.shape == (3, 2) and set(labels.tolist()) <= {"neg", "pos"}


def test_predict_on_array_combined_and_tabular_datastores(tmp_path):
    net = dtb.Network([L.FeatureInput(3), L.Dense(2)])
    x = np.random.rand(7, 3).astype(np.float32)
    expected = dtb.predict(net, x)
    assert torch.allclose(dtb.predict(net, ArrayDatastore(x, targets=list("aabbaab"))), expected)
    pair = combine(ArrayDatastore(x), ArrayDatastore(np.zeros(7)))
    assert torch.allclose(dtb.predict(net, pair, batch_size=2), expected)
    path = tmp_path / "t.csv"
    rows = "\n".join(",".join(f"{v:.6f}" for v in row) + ",0" for row in x)
    path.write_text("a,b,c,y\n" + rows + "\n")
    table = TabularDatastore(path, response="y", read_size=3)
    assert torch.allclose(dtb.predict(net, table), expected, atol=1e-5)
