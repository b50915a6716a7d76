"""The web API gateway (Tahoe's WAPI paths) and status pages."""
