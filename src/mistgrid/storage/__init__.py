"""Storage: the disk backend, the GBS server and client."""
