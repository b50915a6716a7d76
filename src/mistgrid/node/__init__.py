"""Node directories and the composition root that wires a node's services."""
