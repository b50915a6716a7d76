"""Mutable files (SDMF and MDMF): pure cores for one version's encoding, the servermap and
the publish plan; the Twisted shell that drives them is `grid.mutable`."""
