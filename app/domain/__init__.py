"""The domain: what links, uploads, downloads and tickets mean, and the rules on them.
It uses crypto, storage, db and infra, and never imports HTTP (fastapi, starlette, app.http,
app.api, app.web)."""
