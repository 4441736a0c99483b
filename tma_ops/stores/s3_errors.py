"""botocore's exceptions turned into one-line StoreErrors that name the store and the fix.

Messages never carry the secret key: they are built from codes and settings, and whatever text
the server or botocore adds is scrubbed of the secret before it is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from boto3.exceptions import Boto3Error
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    FlexibleChecksumError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)

from tma_ops.errors import IntegrityError, StoreError, TmaError

CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}
DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "403", "Forbidden"}
THROTTLE_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"}
BOTO_ERRORS = (BotoCoreError, ClientError, Boto3Error)


@dataclass(frozen=True)
class Where:
    """What an error message says about the store: its URL, bucket, endpoint and secret."""

    url: str
    bucket: str
    endpoint: str
    secret: str | None = None

    def scrub(self, text: str) -> str:
        return text.replace(self.secret, "***") if self.secret else text


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or status_of(exc))


def status_of(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def translate(where: Where, exc: BaseException, action: str) -> TmaError:
    """The StoreError (or IntegrityError) to raise for exc, which happened during action."""
    if isinstance(exc, ClientError):
        message = _client_message(where, exc, action)
    elif isinstance(exc, FlexibleChecksumError):
        return IntegrityError(
            f"store {where.url}: {action}: the bytes read do not match the SHA-256 the server "
            "recorded for them"
        )
    else:
        message = _transport_message(where, exc, action)
    return StoreError(where.scrub(message))


def _client_message(where: Where, exc: ClientError, action: str) -> str:
    code, status = error_code(exc), status_of(exc)
    detail = exc.response.get("Error", {}).get("Message") or ""
    url = where.url
    if code == "NoSuchBucket":
        return (
            f"store {url}: bucket {where.bucket!r} does not exist at {where.endpoint}; "
            f"create it with `tma-ops store init` or fix the URL / endpoint_url"
        )
    if code == "InvalidAccessKeyId":
        return (
            f"store {url}: the S3 server does not know this access key ({action}); "
            f"check access_key_id / secret_access_key (or the profile) for {url}"
        )
    if code == "SignatureDoesNotMatch":
        return (
            f"store {url}: request signature refused: the secret key does not match the access "
            f"key ({action}); check access_key_id / secret_access_key for {url}"
        )
    if code in CREDENTIAL_CODES:
        return f"store {url}: credentials refused ({code}, {action}); renew them for {url}"
    if code in DENIED_CODES:
        return (
            f"store {url}: access denied ({action}); expected credentials allowed to list, "
            f"read, write and delete under {url} (check the IAM or bucket policy, "
            f"access_key_id / secret_access_key)"
        )
    if code in THROTTLE_CODES or status >= 500:
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        return (
            f"store {url}: the S3 server kept failing ({code}, HTTP {status}) after "
            f"{attempts} attempt(s) ({action}); expected it to recover: try again later"
        )
    if code in {"PermanentRedirect", "AuthorizationHeaderMalformed", "301"}:
        return (
            f"store {url}: the bucket is in another region ({code}, {action}); "
            f"set region to the bucket's region"
        )
    return f"store {url}: {action} refused: {code} (HTTP {status}) {detail}".rstrip()


def _transport_message(where: Where, exc: BaseException, action: str) -> str:
    url, endpoint = where.url, where.endpoint
    if isinstance(exc, SSLError):
        return (
            f"store {url}: TLS verification of {endpoint} failed ({action}); expected a "
            f"certificate this machine trusts: set ca_bundle to the CA that signed it"
        )
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):
        return (
            f"store {url}: cannot reach the S3 endpoint {endpoint} ({action}); "
            f"check endpoint_url / region and that the server is up and reachable"
        )
    if isinstance(exc, ReadTimeoutError):
        return f"store {url}: the S3 endpoint {endpoint} stopped answering ({action}); try again"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"store {url}: no S3 credentials found; expected access_key_id with "
            f"secret_access_key(_file), a profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(exc, ProfileNotFound):
        return f"store {url}: {exc}; expected a profile of ~/.aws/config or ~/.aws/credentials"
    return f"store {url}: {action} failed: {exc}"


@contextmanager
def s3_errors(where: Where, action: str) -> Iterator[None]:
    """Translate boto's exceptions raised in the block; anything else passes through as is."""
    try:
        yield
    except BOTO_ERRORS as exc:
        raise translate(where, exc, action) from exc
