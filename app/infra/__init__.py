"""Infrastructure adapters: the negative-lookup cache, job notifications, spent-ticket
stores, Redis, per-client limits and metrics. `app.services` builds them; they never import
HTTP or the domain."""
