"""GBS, Tahoe-LAFS's HTTP storage protocol: NURLs, messages, headers (pure)."""
