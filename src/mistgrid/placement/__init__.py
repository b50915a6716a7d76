"""Where shares go: permuted server order and servers-of-happiness (pure)."""
