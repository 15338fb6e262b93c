"""The web pages: the upload page and the share page, rendered on the server."""
