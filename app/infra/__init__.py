"""Infrastructure adapters: the negative-lookup cache, job notifications, spent-ticket
stores, Redis, per-client limits and metrics. They know services, never HTTP or the domain."""
