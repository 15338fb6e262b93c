"""The worker: claims sealing jobs, seals staged uploads into blobs, runs the janitor."""
