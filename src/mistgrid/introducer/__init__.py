"""The introducer: Tahoe-LAFS 1.20 compatible announcements over Foolscap."""
