"""A schemathesis run against the inference server's OpenAPI schema: generated requests,
valid and not, never get a 5xx answer."""

import pytest
import torch

from deeptoolbox import Network
from deeptoolbox import layers as L

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from deeptoolbox.deploy import create_app  # noqa: E402


@pytest.fixture(scope="module")
def api_schema():
    torch.manual_seed(0)
    net = Network([L.FeatureInput(3), L.Dense(2), L.Softmax()], classes=["no", "yes"])
    app = create_app(net, max_batch_size=4, max_wait_ms=1)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_generated_request_gets_a_server_error(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/predict", "/v1/classify", "/metrics"}
    statuses = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def no_server_error(case):
            response = case.call_and_validate(checks=[not_a_server_error])
            statuses.append(response.status_code)

        no_server_error()
    assert 200 in statuses and any(400 <= code < 500 for code in statuses)  # both kinds were sent
