"""HTTP plumbing shared by the routers of `app.api` and the pages of `app.web`: request
helpers and dependencies, CSRF, QR codes, error answers, OpenAPI, streamed multipart, the
uvicorn protocol and server. Never imports a router or a page."""
