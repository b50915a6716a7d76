"""The anonymity policy: pure decisions about revealing the node and reaching addresses."""
