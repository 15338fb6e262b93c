"""The production mode's services, and its reference: the S3 endpoint's own speed via boto3.

PostgreSQL and Redis come from `tests.support.services` (the servers on the usual ports, or
throw-away ones), the S3 endpoint from `tests.support.s3` (SeaweedFS started for the run, or
the server `SEALDROP_TEST_S3_URL` names). Each run gets its own database, Redis key prefix
and buckets, and removes them at the end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from app.crypto.keys import new_key_entry
from bench.cases import Files, Sample, mbps
from bench.stacks import Backends
from tests.support import s3 as s3_support
from tests.support import services as service_support

READ_CHUNK = 1 << 20


@contextmanager
def backends() -> Iterator[Backends]:
    """PostgreSQL, Redis and S3 for one run, each removed (or left as found) after."""
    with ExitStack() as cleanup:
        s3_endpoint = s3_support.start_endpoint()
        cleanup.callback(s3_endpoint.stop)
        s3_env = s3_endpoint.env
        blobs = s3_support.create_bucket(s3_env, "bench-blobs")
        cleanup.callback(s3_support.remove_bucket, s3_env, blobs)
        staging = s3_support.create_bucket(s3_env, "bench-staging")
        cleanup.callback(s3_support.remove_bucket, s3_env, staging)
        postgres = service_support.postgres_server()
        cleanup.callback(service_support.remove_postgres_cluster, postgres)
        database = service_support.create_database(postgres)
        cleanup.callback(service_support.drop_database, database)
        redis = service_support.own_redis()
        cleanup.callback(service_support.remove_redis, redis)
        endpoint = s3_env["AWS_ENDPOINT_URL"]
        region = s3_env.get("AWS_REGION", "us-east-1")
        credentials = {k: v for k, v in s3_env.items() if k.startswith("AWS_")}
        yield Backends(
            database_url=database.url,
            redis_url=redis.url(),
            blobs_url=f"s3://{blobs}?endpoint_url={endpoint}&region={region}",
            staging_url=f"s3://{staging}?endpoint_url={endpoint}&region={region}",
            s3_env=credentials,
            master_keys=new_key_entry("bench"),
        )


class S3Cases:
    """The references of the production mode: one boto3 client's PUT and GET of the file."""

    def __init__(self, s3_env: dict[str, str], bucket_url: str, files: Files) -> None:
        self.client: Any = s3_support.client(s3_env)
        self.bucket = bucket_url.removeprefix("s3://").split("?", 1)[0]
        self.files = files
        self._key = "bench/reference.bin"

    def prepare(self) -> None:
        """Store the file once for the GET references."""
        with self.files.big.open("rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=self._key, Body=body)

    def get(self) -> Sample:
        """One GET of the whole object, read to nowhere."""
        return self._get("S3 GET", None, self.files.size)

    def get_range(self) -> Sample:
        """One ranged GET of the same middle half."""
        return self._get("S3 GET range", self.files.byte_range, self.files.range_length)

    def put(self) -> Sample:
        """One PUT of the file (streamed from tmpfs), then a DELETE."""
        key = "bench/put.bin"
        started = time.perf_counter()
        with self.files.big.open("rb") as body:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        seconds = time.perf_counter() - started
        self.client.delete_object(Bucket=self.bucket, Key=key)
        return Sample("S3 PUT", mbps(self.files.size, seconds), "MB/s", self.files.size)

    def cleanup(self) -> None:
        """Remove the reference object."""
        self.client.delete_object(Bucket=self.bucket, Key=self._key)

    def _get(self, name: str, byte_range: tuple[int, int] | None, expected: int) -> Sample:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key}
        if byte_range:
            arguments["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        started = time.perf_counter()
        body = self.client.get_object(**arguments)["Body"]
        received = 0
        while chunk := body.read(READ_CHUNK):
            received += len(chunk)
        seconds = time.perf_counter() - started
        if received != expected:
            raise RuntimeError(f"{name}: {received} bytes, expected {expected}")
        return Sample(name, mbps(expected, seconds), "MB/s", expected)
