"""Every supported layer type, generated as C, compiled and compared with the network.

Layer cases are grouped into a few multi-output networks (one branch per case) so that one
compiled program covers many cases; each output is checked on its own.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from deploy_helpers import (
    assert_float_close,
    c_outputs,
    inputs_for,
    network_outputs,
    output_step,
    requires_cc,
)
from deploy_networks import SUITES

from deeptoolbox.deploy import supported_layer_types

pytestmark = requires_cc


@functools.cache
def _suite(name: str):
    return SUITES[name][0]()


def _cases() -> list[tuple[str, str]]:
    return [(suite, output) for suite in SUITES for output in _suite(suite)[0].output_names]


def _build(builds, suite: str, precision: str):
    make, options = SUITES[suite]
    return builds.get(suite, make, precision=precision, **options)


def _compare(builds, suite: str, precision: str):
    """(build, inputs, C outputs, network outputs, int8 reference outputs), once per session."""
    key = ("compare", suite, precision)
    if key not in builds.cache:
        built = _build(builds, suite, precision)
        net, _ = _suite(suite)
        shapes = [tuple(port["shape"]) for port in built.code.manifest["inputs"]]
        inputs = inputs_for(
            net, shapes, built.report.batch_size, seed=7, scale=SUITES[suite][1].get("scale", 1.0)
        )
        reference = built.reference_int8([x.numpy() for x in inputs]) if built.qgraph else None
        builds.cache[key] = (
            built,
            inputs,
            c_outputs(built.code, inputs),
            network_outputs(built.net, inputs),
            reference,
        )
    return builds.cache[key]


def test_every_supported_layer_type_is_covered():
    covered = set()
    for suite in SUITES:
        net = _suite(suite)[0]
        covered |= {type(net.layer(name)).__name__ for name in net.layer_names}
    assert set(supported_layer_types()) - covered == set()


@pytest.mark.parametrize(("suite", "output"), _cases())
def test_float_code_matches_the_network(builds, suite, output):
    built, _, got, want, _ = _compare(builds, suite, "float32")
    index = built.net.output_names.index(output)
    assert_float_close(got[index], want[index], f"{suite}/{output}")


@pytest.mark.parametrize(("suite", "output"), _cases())
def test_int8_code_equals_the_integer_reference_and_stays_near_float(builds, suite, output):
    built, _, got, want, references = _compare(builds, suite, "int8")
    index = built.net.output_names.index(output)
    reference = references[index]
    np.testing.assert_array_equal(got[index], reference.reshape(got[index].shape))
    step = output_step(built.qgraph, index)
    spread = float(want[index].max() - want[index].min())
    error = float(np.abs(got[index] - want[index].reshape(got[index].shape)).max())
    assert error <= max(6 * step, 0.06 * spread), (
        f"{suite}/{output}: int8 differs from float by {error:.3g} (output step {step:.3g}, "
        f"range {spread:.3g})"
    )
