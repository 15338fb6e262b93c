"""The `sealdrop send` / `sealdrop get` client: talks to a Sealdrop server over HTTP only.

It never imports the server's layers (database, storage, domain): what it knows of the
server it learns from `GET /api/v1/` and the answers of the routes it calls
(docs/client.md).
"""
