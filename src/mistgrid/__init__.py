"""mistgrid: a Tahoe-LAFS compatible file store that speaks Tor and I2P natively."""

__version__ = "0.1.0.dev0"
