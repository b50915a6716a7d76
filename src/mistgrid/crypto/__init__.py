"""Cryptographic building blocks: tagged SHA-256d hashes, Merkle trees, AES-CTR."""
