"""OpenAPI descriptions of the inference server's request and answer bodies, sized from the
model's own inputs (so generated clients and API testers send the right shapes)."""

from __future__ import annotations

from typing import Any

from deeptoolbox.deploy._server_model import InputSpec

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "field": {"type": "string"},
                "message": {"type": "string"},
                "received": {},
                "expected": {},
            },
            "required": ["field", "message"],
        }
    },
}
NPY_SCHEMA = {
    "type": "object",
    "required": ["npy"],
    "additionalProperties": False,
    "properties": {"npy": {"type": "string", "description": "base64 of a .npy file (numpy.save)"}},
}


def _nested_array(spec: InputSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    for size in reversed(spec.size):
        schema = {"type": "array", "items": schema, "minItems": 1}
        if size is not None:
            schema["maxItems"] = schema["minItems"] = size
    return {"type": "array", "items": schema, "minItems": 1,
            "description": f"input '{spec.name}' ({spec.kind}), batch first: {spec.describe()}"}  # fmt: skip


def _tensor(spec: InputSpec) -> dict[str, Any]:
    return {"anyOf": [_nested_array(spec), NPY_SCHEMA]}


def request_schema(inputs: list[InputSpec]) -> dict[str, Any]:
    """The JSON body of ``/v1/predict`` and ``/v1/classify`` for these inputs."""
    if len(inputs) == 1:
        value = _tensor(inputs[0])
    else:
        value = {
            "type": "object",
            "required": [s.name for s in inputs],
            "additionalProperties": False,
            "properties": {s.name: _tensor(s) for s in inputs},
        }
    return {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {"inputs": value},
    }


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "malformed body", 401: "API key missing or wrong", 413: "request too large",
               415: "unsupported content type", 422: "inputs that do not fit the model",
               503: "shutting down"}  # fmt: skip
    return {
        str(code): {
            "description": reasons[code],
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }  # fmt: skip
        for code in codes
    }


def predict_openapi(inputs: list[InputSpec]) -> dict[str, Any]:
    """``openapi_extra`` of ``POST /v1/predict``."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": request_schema(inputs)}},
        },
        "responses": {
            "200": {
                "description": "the model's outputs, observations first",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "outputs": {},
                                "model": {"type": "string"},
                                "model_version": {},
                                "warnings": {"type": "array"},
                            },
                            "required": ["outputs"],
                        }
                    }
                },
            },  # fmt: skip
            **_errors(400, 401, 413, 415, 422, 503),
        },
    }


def classify_openapi(inputs: list[InputSpec], images: bool) -> dict[str, Any]:
    """``openapi_extra`` of ``POST /v1/classify`` (image files too for image networks)."""
    content: dict[str, Any] = {"application/json": {"schema": request_schema(inputs)}}
    if images:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "required": ["images"],
                "properties": {
                    "images": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
            }
        }
    return {
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": {
                "description": "a label and class scores per observation",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "labels": {"type": "array"},
                                "scores": {"type": "array"},
                                "classes": {},
                                "model": {"type": "string"},
                                "model_version": {},
                            },
                            "required": ["labels", "scores"],
                        }
                    }
                },
            },  # fmt: skip
            **_errors(400, 401, 413, 415, 422, 503),
        },
    }
