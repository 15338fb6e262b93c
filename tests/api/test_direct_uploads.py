"""Direct uploads on the embedded mode: staging is a local folder, so there is no direct
path; every route answers a clear 404 and changes nothing (the S3 path is tested in
tests/production_stack/test_direct_uploads.py)."""

from __future__ import annotations

import warnings

from tests.conftest import AppClient

API = "/api/v1/direct-uploads"


async def test_creating_a_direct_upload_without_s3_staging_is_a_clear_404(
    client: AppClient,
) -> None:
    answer = await client.post(API, json={"filename": "a.bin", "size": 10})
    assert answer.status_code == 404
    assert "no direct uploads" in answer.text
    assert "use PUT" in answer.text


async def test_the_other_direct_routes_answer_404_without_s3_staging(client: AppClient) -> None:
    upload = f"{API}/{'A' * 22}"
    assert (await client.get(upload)).status_code == 404
    assert (await client.post(upload + "/complete")).status_code == 404
    assert (await client.delete(upload)).status_code == 404


async def test_openapi_documents_the_direct_routes(client: AppClient) -> None:
    with warnings.catch_warnings():
        # FastAPI warns of the GET and HEAD download routes sharing an operation id.
        warnings.simplefilter("ignore", UserWarning)
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths[API]) == {"post"}
    assert {"get", "delete"} <= set(paths[API + "/{upload_id}"])
    assert "409" in paths[API + "/{upload_id}/complete"]["post"]["responses"]
