"""The inference server (create_app) through httpx: answers equal the network's own
predictions, concurrent requests share batches, bad input gets a 4xx naming the field, the API
key is enforced, and /metrics counts what happened."""

import asyncio
import base64
import io
import json

import numpy as np
import pytest
import torch

from deeptoolbox import Network, classify, predict
from deeptoolbox import layers as L
from deeptoolbox.deploy import MicroBatcher, ServerOptions, create_app
from deeptoolbox.errors import OptionError, RequestError, ServerClosedError

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def mlp() -> Network:
    torch.manual_seed(0)
    return Network(
        [L.FeatureInput(4), L.Dense(8), L.ReLU(), L.Dense(3), L.Softmax()],
        classes=["low", "mid", "high"],
        name="mlp",
    )


def image_net() -> Network:
    torch.manual_seed(1)
    return Network(
        [L.ImageInput((1, 6, 6)), L.Conv2d(2, 3, padding=1), L.ReLU(), L.Flatten(), L.Dense(2)],
        classes=["dark", "light"],
        name="images",
    )


async def _send(app, requests):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(*(client.request(**r) for r in requests))


def ask(app, method="POST", url="/v1/predict", **kwargs):
    return asyncio.run(_send(app, [{"method": method, "url": url, **kwargs}]))[0]


def ask_many(app, requests):
    return asyncio.run(_send(app, requests))


def field_of(answer) -> str:
    return answer.json()["error"]["field"]


@pytest.fixture(scope="module")
def net():
    return mlp()


@pytest.fixture(scope="module")
def app(net):
    return create_app(net, max_batch_size=8, max_wait_ms=2)


# -- answers ----------------------------------------------------------------------------------
def test_predict_equals_net_predict(app, net):
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    answer = ask(app, json={"inputs": x.tolist()})
    assert answer.status_code == 200
    expected = predict(net, x).numpy()
    np.testing.assert_allclose(np.array(answer.json()["outputs"]), expected, atol=1e-6)
    assert answer.json()["model"] == "mlp"


def test_predict_takes_base64_npy(app, net):
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float64)  # float64 is accepted
    buffer = io.BytesIO()
    np.save(buffer, x)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    answer = ask(app, json={"inputs": {"npy": encoded}})
    assert answer.status_code == 200
    np.testing.assert_allclose(
        answer.json()["outputs"], predict(net, x.astype(np.float32)), atol=1e-6
    )


def test_classify_gives_labels_and_scores_of_classify(app, net):
    x = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    answer = ask(app, url="/v1/classify", json={"inputs": x.tolist()}).json()
    labels, scores = classify(net, x)
    assert answer["labels"] == labels.tolist()
    np.testing.assert_allclose(answer["scores"], scores.numpy(), atol=1e-6)
    assert answer["classes"] == ["low", "mid", "high"]


def test_classify_image_files_as_the_network_reads_them():
    from PIL import Image

    net = image_net()
    app = create_app(net)
    rng = np.random.default_rng(3)
    pixels = [rng.integers(0, 256, size=(6, 6), dtype=np.uint8) for _ in range(2)]
    files = []
    for index, image in enumerate(pixels):
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        files.append(("images", (f"img{index}.png", buffer.getvalue(), "image/png")))
    answer = ask(app, url="/v1/classify", files=files)
    assert answer.status_code == 200, answer.text
    batch = np.stack([p[None].astype(np.float32) / 255.0 for p in pixels])
    labels, scores = classify(net, batch)
    assert answer.json()["labels"] == labels.tolist()
    np.testing.assert_allclose(answer.json()["scores"], scores.numpy(), atol=1e-5)


def test_metadata_health_and_ready(app):
    meta = ask(app, "GET", "/v1/metadata").json()
    assert meta["classes"] == ["low", "mid", "high"]
    assert meta["inputs"][0]["size"] == [4]
    assert meta["server"]["max_batch_size"] == 8
    assert meta["server"]["api_key_required"] is False
    assert ask(app, "GET", "/health").json() == {"status": "ok"}
    assert ask(app, "GET", "/ready").json()["ready"] is True


def test_onnxruntime_backend_gives_the_same_answers(net):
    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(4).normal(size=(4, 4)).astype(np.float32)
    app = create_app(net, backend="onnxruntime")
    answer = ask(app, json={"inputs": x.tolist()})
    assert answer.status_code == 200
    np.testing.assert_allclose(answer.json()["outputs"], predict(net, x), atol=1e-5)


# -- micro-batching ---------------------------------------------------------------------------
def _batch_counts(app) -> tuple[float, float]:
    text = ask(app, "GET", "/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith(("deeptoolbox_batch_size_count", "deeptoolbox_batch_size_sum")):
            name, value = line.split()
            values[name] = float(value)
    return values["deeptoolbox_batch_size_count"], values["deeptoolbox_batch_size_sum"]


def test_concurrent_requests_share_batches_and_get_their_own_rows(net):
    app = create_app(net, max_batch_size=16, max_wait_ms=200, warm_up=False)
    xs = np.random.default_rng(5).normal(size=(16, 1, 4)).astype(np.float32)
    answers = ask_many(app, [{"method": "POST", "url": "/v1/predict", "json": {"inputs": x.tolist()}}
                             for x in xs])  # fmt: skip
    assert all(a.status_code == 200 for a in answers)
    got = np.concatenate([np.array(a.json()["outputs"]) for a in answers])
    np.testing.assert_allclose(got, predict(net, xs[:, 0]).numpy(), atol=1e-6)
    runs, rows = _batch_counts(app)
    assert rows == 16
    assert runs < 16  # requests were grouped (16 with a 200 ms window: usually a single run)


def test_batch_size_one_runs_each_request_alone(net):
    app = create_app(net, max_batch_size=1, max_wait_ms=0, warm_up=False)
    xs = np.random.default_rng(6).normal(size=(5, 1, 4)).astype(np.float32)
    answers = ask_many(app, [{"method": "POST", "url": "/v1/predict", "json": {"inputs": x.tolist()}}
                             for x in xs])  # fmt: skip
    assert [a.status_code for a in answers] == [200] * 5
    assert _batch_counts(app) == (5.0, 5.0)


def test_batcher_splits_a_large_request_and_keeps_different_lengths_apart():
    seen = []

    def run(inputs):
        seen.append(inputs[0].shape)
        return [inputs[0].sum(axis=-1)]

    batcher = MicroBatcher(run, max_batch_size=4, max_wait_ms=20)

    async def main():
        big = batcher.submit([np.ones((6, 3))])
        short = batcher.submit([np.ones((1, 2))])
        answers = await asyncio.gather(big, short)
        await batcher.close()
        return answers

    big, short = asyncio.run(main())
    assert big[0].tolist() == [3.0] * 6 and short[0].tolist() == [2.0]
    assert sorted(seen) == [(1, 2), (2, 3), (4, 3)]


def test_close_answers_queued_requests_then_refuses_new_ones():
    batcher = MicroBatcher(lambda xs: [xs[0] + 1], max_batch_size=64, max_wait_ms=500)

    async def main():
        pending = [asyncio.ensure_future(batcher.submit([np.full((1, 1), i)])) for i in range(3)]
        await asyncio.sleep(0)  # queued, waiting for the batch to fill
        await batcher.close()  # does not wait the 500 ms window out... but answers everyone
        answers = [p.result()[0].item() for p in pending]
        with pytest.raises(ServerClosedError):
            await batcher.submit([np.zeros((1, 1))])
        return answers

    assert asyncio.run(main()) == [1, 2, 3]


def test_a_failing_model_answers_500_and_the_server_keeps_serving():
    net = mlp()
    app = create_app(net, warm_up=False)
    forward = net.forward
    calls = []

    def fails_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return forward(*args)

    net.forward = fails_once
    x = {"inputs": [[0.0, 1.0, 2.0, 3.0]]}
    failed, served = ask(app, json=x), ask(app, json=x)
    assert failed.status_code == 500
    assert "RuntimeError: out of memory" in failed.json()["error"]["message"]
    assert served.status_code == 200


# -- bad input -------------------------------------------------------------------------------
BAD_BODIES = [
    pytest.param(b"{not json", "application/json", 400, "body", id="malformed-json"),
    pytest.param(b"", "application/json", 400, "body", id="empty"),
    pytest.param(
        b'{"inputs": [[NaN, 1, 2, 3]]}', "application/json", 400, "body", id="nan-literal"
    ),
    pytest.param(b"[1, 2]", "application/json", 422, "body", id="not-an-object"),
    pytest.param(b'{"x": 1}', "application/json", 422, "x", id="unknown-field"),
    pytest.param(b"{}", "application/json", 422, "inputs", id="no-inputs"),
    pytest.param(b'{"inputs": [[1, 2, 3]]}', "application/json", 422, "inputs", id="wrong-size"),
    pytest.param(
        b'{"inputs": [1, 2, 3, 4]}', "application/json", 422, "inputs", id="no-batch-axis"
    ),
    pytest.param(
        b'{"inputs": [[1, 2], [1, 2, 3, 4]]}', "application/json", 422, "inputs", id="ragged"
    ),  # fmt: skip
    pytest.param(
        b'{"inputs": [["a", "b", "c", "d"]]}', "application/json", 422, "inputs", id="strings"
    ),  # fmt: skip
    pytest.param(
        b'{"inputs": [[1e300, 0, 0, 0]]}', "application/json", 422, "inputs", id="beyond-float32"
    ),  # fmt: skip
    pytest.param(
        b'{"inputs": {"npy": "@@@"}}', "application/json", 422, "inputs.npy", id="bad-b64"
    ),
    pytest.param(b'{"inputs": []}', "application/json", 422, "inputs", id="no-observations"),
    pytest.param(b"inputs=1", "text/plain", 415, "Content-Type", id="not-json"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "field"), BAD_BODIES)
def test_bad_input_gets_a_4xx_naming_the_field(app, body, content_type, status, field):
    answer = ask(app, content=body, headers={"content-type": content_type})
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert error["message"]


def test_wrong_size_says_what_was_received_and_expected(app):
    error = ask(app, json={"inputs": [[1, 2, 3]]}).json()["error"]
    assert error["received"] == [1, 3]
    assert error["expected"] == "(N, 4)"


def test_too_large_request_is_413_before_the_model_runs(net):
    app = create_app(net, max_request_bytes=1000, warm_up=False)
    x = np.zeros((100, 4)).tolist()
    answer = ask(app, json={"inputs": x})
    assert answer.status_code == 413
    assert field_of(answer) == "body"
    assert "1,000 bytes" in answer.json()["error"]["expected"]
    assert ask(app, json={"inputs": [[0, 0, 0, 0]]}).status_code == 200


def test_image_that_is_not_an_image_is_422_naming_the_file_field():
    app = create_app(image_net(), warm_up=False)
    answer = ask(app, url="/v1/classify", files=[("images", ("x.png", b"not a png", "image/png"))])
    assert answer.status_code == 422
    assert field_of(answer) == "images[0]"


def test_image_files_to_a_feature_model_are_415(app):
    answer = ask(app, url="/v1/classify", files=[("images", ("x.png", b"123", "image/png"))])
    assert answer.status_code == 415
    assert field_of(answer) == "images"


def test_bad_server_options_are_clear_errors(net):
    with pytest.raises(OptionError, match="max_batch_size"):
        ServerOptions(max_batch_size=0)
    with pytest.raises(OptionError, match="cors_origins"):
        ServerOptions(cors_origins="https://example.com")
    with pytest.raises(OptionError, match="not both"):
        create_app(net, ServerOptions(), max_batch_size=4)
    with pytest.raises(OptionError, match="does not exist"):
        create_app("no/such/model.onnx")


def test_request_error_body_names_field_received_expected():
    err = RequestError(422, "inputs", "Wrong size.", received=[1, 3], expected="(N, 4)")
    assert err.body() == {"error": {"field": "inputs", "message": "Wrong size.",
                                    "received": [1, 3], "expected": "(N, 4)"}}  # fmt: skip


# -- API key and metrics ---------------------------------------------------------------------
def test_api_key_is_required_when_set(net):
    app = create_app(net, api_key="s3cret", warm_up=False)
    body = {"inputs": [[0.0, 0.0, 0.0, 0.0]]}
    missing = ask(app, json=body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["error"]["received"] == "no key"
    wrong = ask(app, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["received"] == "a wrong key"
    assert ask(app, json=body, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert ask(app, json=body, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert ask(app, "GET", "/metrics").status_code == 401
    assert ask(app, "GET", "/v1/metadata").status_code == 401
    assert ask(app, "GET", "/health").status_code == 200  # probes stay open
    assert ask(app, "GET", "/ready").status_code == 200


def test_cors_is_off_by_default_and_on_for_listed_origins(net):
    preflight = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    closed = ask(create_app(net, warm_up=False), "OPTIONS", "/v1/predict", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    app = create_app(net, warm_up=False, cors_origins=["https://app.example.com"])
    opened = ask(app, "OPTIONS", "/v1/predict", headers=preflight)
    assert opened.headers["access-control-allow-origin"] == "https://app.example.com"


def test_metrics_count_requests_by_endpoint_and_status(net):
    app = create_app(net, warm_up=False)
    ask(app, json={"inputs": [[0.0, 0.0, 0.0, 0.0]]})
    ask(app, json={"inputs": [[0.0]]})
    ask(app, "GET", "/no/such/path")
    text = ask(app, "GET", "/metrics").text
    assert 'deeptoolbox_requests_total{endpoint="/v1/predict",status="200"} 1.0' in text
    assert 'deeptoolbox_requests_total{endpoint="/v1/predict",status="422"} 1.0' in text
    assert 'deeptoolbox_requests_total{endpoint="other",status="404"} 1.0' in text
    assert 'deeptoolbox_request_latency_seconds_count{endpoint="/v1/predict"} 2.0' in text


def test_openapi_schema_describes_the_endpoints(app):
    schema = json.loads(ask(app, "GET", "/openapi.json").text)
    assert {"/v1/predict", "/v1/classify", "/v1/metadata", "/health", "/ready", "/metrics"} <= set(
        schema["paths"]
    )
