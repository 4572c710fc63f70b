"""The designer's state without a server: every library layer, undo depth, the handle."""

import pytest

from deeptoolbox import Network
from deeptoolbox import layers as L
from deeptoolbox.apps import DesignerSession, designer, layer_library
from deeptoolbox.apps._session import UNDO_DEPTH
from deeptoolbox.errors import NetworkError, OptionError


def test_every_library_layer_can_be_dropped_with_its_starter_values():
    session = DesignerSession()
    library = layer_library()
    for entry in library:
        session.edit({"op": "add", "type": entry["type"]})
    assert len(session.network.layer_names) == len(library)
    types = {type(m).__name__ for m in session.network.layers.values()}
    assert {e["type"] for e in library} == types


def test_undo_keeps_the_weights_and_is_bounded():
    net = Network([L.FeatureInput(3, name="x"), L.Dense(2, name="fc")])
    weight = net.layer("fc").weight.detach().clone()
    session = DesignerSession(net)
    session.edit({"op": "set", "name": "fc", "config": {"units": 4}})
    assert session.network.layer("fc").units == 4
    session.undo()
    assert session.network.layer("fc").weight.detach().equal(weight)
    for k in range(UNDO_DEPTH + 5):
        session.edit({"op": "add", "type": "ReLU", "name": f"r{k}"})
    for _ in range(UNDO_DEPTH):
        session.undo()
    with pytest.raises(NetworkError, match="Nothing to undo"):
        session.undo()


def test_a_failed_edit_leaves_the_session_alone():
    session = DesignerSession(Network([L.FeatureInput(3, name="x")]))
    with pytest.raises(OptionError):
        session.edit({"op": "add", "type": "Dense", "config": {"units": 0}})
    assert session.network.layer_names == ["x"] and not session.describe()["can_undo"]


def test_designer_refuses_a_plain_module():
    from torch import nn

    with pytest.raises(OptionError, match="from_torch"):
        designer(nn.Linear(2, 3), open_browser=False)


def test_the_handle_gives_back_the_edited_network():
    handle = designer(Network([L.FeatureInput(3, name="x")]), open_browser=False)
    try:
        handle.session.edit({"op": "add", "type": "Dense", "config": {"units": 5}, "name": "fc"})
        handle.session.edit({"op": "connect", "source": "x", "destination": "fc"})
        assert handle.network.output_shape() == (5,)
    finally:
        net = handle.close()
    assert net.layer_names == ["x", "fc"]
