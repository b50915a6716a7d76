"""Sans-IO protocol machines: SOCKS5 and SAM v3 clients (bytes in, bytes and events out)."""
