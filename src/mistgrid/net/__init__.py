"""Network shells: the one connector that opens outgoing connections, and listeners."""
