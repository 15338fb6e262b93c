"""Cryptography with no I/O: the sealed-blob format, the key ring, signatures, tokens,
password hashing and digests. Imports nothing of the project but settings and errors."""
