"""Share containers: pack and unpack only, no I/O."""
