"""tahoe.cfg: reading, checking every key, one problem per line (pure)."""
