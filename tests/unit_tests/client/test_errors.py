"""Unit tests for the exception tree (`langchain_devic.errors`)."""

from __future__ import annotations

import pickle

import pytest
from langchain_core.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

import langchain_devic
from langchain_devic import errors
from langchain_devic._wire import api_error
from langchain_devic.errors import (
    RETRYABLE_STATUSES,
    DevicAPIError,
    DevicAuthenticationError,
    DevicBadRequestError,
    DevicConflictError,
    DevicConnectionError,
    DevicError,
    DevicGatewayError,
    DevicNotFoundError,
    DevicPermissionDeniedError,
    DevicProtocolError,
    DevicRateLimitError,
    DevicRequestTimeoutError,
    DevicServerError,
    DevicServiceUnavailableError,
    DevicTimeoutError,
    error_class_for_status,
)

TOKEN = "devic-test-TOKEN-4f9a1c"


@pytest.mark.parametrize(
    ("status", "cls", "family", "retryable"),
    [
        (400, DevicBadRequestError, ModelInvalidRequestError, False),
        (401, DevicAuthenticationError, ModelAuthenticationError, False),
        (403, DevicPermissionDeniedError, ModelPermissionDeniedError, False),
        (404, DevicNotFoundError, ModelNotFoundError, False),
        (408, DevicRequestTimeoutError, ModelAPIError, True),
        (409, DevicConflictError, ModelAPIError, True),
        (422, DevicBadRequestError, ModelInvalidRequestError, False),
        (429, DevicRateLimitError, ModelRateLimitError, True),
        (500, DevicServerError, ModelAPIError, False),
        (501, DevicServerError, ModelAPIError, False),
        (502, DevicGatewayError, ModelAPIError, False),
        (503, DevicServiceUnavailableError, ModelAPIError, True),
        (504, DevicGatewayError, ModelAPIError, False),
        (599, DevicServerError, ModelAPIError, False),
        (418, DevicBadRequestError, ModelInvalidRequestError, False),
    ],
)
def test_status_mapping(
    status: int, cls: type[DevicAPIError], family: type[Exception], retryable: bool
) -> None:
    assert error_class_for_status(status) is cls
    exc = cls("msg", status_code=status)
    assert isinstance(exc, DevicAPIError)
    assert isinstance(exc, DevicError)
    assert isinstance(exc, family)
    assert exc.is_retryable is retryable
    built = api_error(status, {}, b"", secret=TOKEN)
    assert type(built) is cls
    assert built.is_retryable is retryable


def test_retryable_statuses() -> None:
    assert frozenset({408, 409, 429, 503}) == RETRYABLE_STATUSES
    assert 500 not in RETRYABLE_STATUSES


@pytest.mark.parametrize(
    ("cls", "family"),
    [
        (DevicBadRequestError, ModelInvalidRequestError),
        (DevicAuthenticationError, ModelAuthenticationError),
        (DevicPermissionDeniedError, ModelPermissionDeniedError),
        (DevicNotFoundError, ModelNotFoundError),
        (DevicRequestTimeoutError, ModelAPIError),
        (DevicConflictError, ModelAPIError),
        (DevicRateLimitError, ModelRateLimitError),
        (DevicServerError, ModelAPIError),
        (DevicConnectionError, ModelConnectionError),
        (DevicTimeoutError, ModelTimeoutError),
    ],
)
def test_langchain_families(cls: type[DevicError], family: type[Exception]) -> None:
    assert issubclass(cls, family)
    assert issubclass(cls, DevicError)


def test_protocol_error_is_a_plain_devic_error() -> None:
    exc = DevicProtocolError("not a reply", body="<html>")
    assert isinstance(exc, DevicError)
    assert not isinstance(exc, DevicAPIError)
    assert exc.is_retryable is False
    assert exc.message == "not a reply"
    assert exc.body == "<html>"
    assert str(exc) == "not a reply"


def test_api_error_attributes_and_text() -> None:
    exc = DevicRateLimitError(
        "Limit reached",
        status_code=429,
        code="TENANT_LIMIT_EXCEEDED",
        body='{"statusCode": 429}',
        retry_after=86400,
    )
    assert exc.message == "Limit reached"
    assert exc.status_code == 429
    assert exc.code == "TENANT_LIMIT_EXCEEDED"
    assert exc.body == '{"statusCode": 429}'
    assert exc.retry_after == 86400
    assert exc.args == ("Limit reached",)
    assert str(exc) == (
        "Devic answered 429 [TENANT_LIMIT_EXCEEDED]: Limit reached "
        "(retry after 86400 s)"
    )
    assert repr(exc) == (
        "DevicRateLimitError(status_code=429, code='TENANT_LIMIT_EXCEEDED', "
        "message='Limit reached')"
    )


def test_api_error_text_without_code_or_wait() -> None:
    exc = DevicNotFoundError("Assistant not found", status_code=404)
    assert exc.code is None
    assert exc.body == ""
    assert exc.retry_after is None
    assert str(exc) == "Devic answered 404: Assistant not found"


def test_is_retryable_is_per_instance() -> None:
    # The LangChain families say "retryable"; an instance may say otherwise.
    assert ModelTimeoutError.is_retryable is True
    class_default = DevicTimeoutError.is_retryable
    read = DevicTimeoutError("read timeout", is_retryable=False)
    connect = DevicTimeoutError("connect timeout", is_retryable=True)
    assert read.is_retryable is False
    assert connect.is_retryable is True
    assert DevicTimeoutError.is_retryable is class_default  # not mutated
    # Without a say-so, the conservative default: do not retry.
    assert DevicTimeoutError("t").is_retryable is False
    assert DevicConnectionError("c").is_retryable is False
    server = DevicServerError("x", status_code=503, is_retryable=False)
    assert server.is_retryable is False
    assert DevicServerError("x", status_code=503).is_retryable is True


def test_base_error_repr() -> None:
    exc = DevicConnectionError("could not connect")
    assert exc.message == "could not connect"
    assert repr(exc) == "DevicConnectionError('could not connect')"
    assert str(exc) == "could not connect"


def test_every_error_is_exported() -> None:
    for name in errors.__all__:
        assert getattr(langchain_devic, name) is getattr(errors, name)
        assert name in langchain_devic.__all__
    expected = {
        "DevicError",
        "DevicAPIError",
        "DevicApprovalRequired",
        "DevicBadRequestError",
        "DevicAuthenticationError",
        "DevicPermissionDeniedError",
        "DevicNotFoundError",
        "DevicRequestTimeoutError",
        "DevicRunError",
        "DevicConflictError",
        "DevicRateLimitError",
        "DevicServerError",
        "DevicConnectionError",
        "DevicConnectError",
        "DevicTimeoutError",
        "DevicConnectTimeoutError",
        "DevicLockError",
        "DevicServiceUnavailableError",
        "DevicGatewayError",
        "DevicLockTimeoutError",
        "DevicStoreError",
        "DevicProtocolError",
        "FATAL_ERRORS",
        "RETRYABLE_ERRORS",
    }
    assert set(errors.__all__) == expected


def test_errors_can_be_caught_generically() -> None:
    with pytest.raises(ModelRateLimitError):
        raise DevicRateLimitError("slow down", status_code=429, retry_after=1)
    with pytest.raises(DevicError):
        raise DevicServerError("boom", status_code=500)


def test_str_of_error_built_from_echoing_server_hides_token() -> None:
    raw = ('{"error": {"message": "bad key ' + TOKEN + '", "code": "AUTH"}}').encode()
    exc = api_error(401, {}, raw, secret=TOKEN)
    for text in (str(exc), repr(exc), repr(exc.args), exc.message, exc.body):
        assert TOKEN not in text
    assert exc.code == "AUTH"


def test_protocol_error_pickles() -> None:
    exc = DevicProtocolError("bad", body="b")
    clone = pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object
    assert isinstance(clone, DevicProtocolError)
    assert clone.message == "bad"
