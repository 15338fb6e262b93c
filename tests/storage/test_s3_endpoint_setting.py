"""`SEALDROP_TEST_S3_URL`: the suite runs against any S3 server it names, and leaves it up.

The session's own SeaweedFS stands in for "another S3 server" here: the settings point at
it as a user would point them at Ceph, MinIO or AWS.
"""

from __future__ import annotations

import pytest

from tests.support.s3 import S3Unavailable, create_bucket, external_endpoint, remove_bucket


def _settings(env: dict[str, str]) -> dict[str, str]:
    return {
        "SEALDROP_TEST_S3_URL": env["AWS_ENDPOINT_URL"],
        "SEALDROP_TEST_S3_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
        "SEALDROP_TEST_S3_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"],
    }


def test_named_server_is_used_with_its_keys_and_left_running(s3_env: dict[str, str]) -> None:
    endpoint = external_endpoint(_settings(s3_env))
    assert endpoint.server == "external"
    assert endpoint.url == s3_env["AWS_ENDPOINT_URL"]
    assert endpoint.env["AWS_REGION"] == "us-east-1"

    endpoint.stop()

    remove_bucket(endpoint.env, create_bucket(endpoint.env, "named"))


@pytest.mark.parametrize(
    "missing", ["SEALDROP_TEST_S3_ACCESS_KEY_ID", "SEALDROP_TEST_S3_SECRET_ACCESS_KEY"]
)
def test_named_server_without_its_keys_is_refused_by_name(
    s3_env: dict[str, str], missing: str
) -> None:
    settings = _settings(s3_env)
    del settings[missing]
    with pytest.raises(S3Unavailable, match=missing) as refused:
        external_endpoint(settings)
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in str(refused.value)
