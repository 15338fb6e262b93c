"""Cryptography: the sealed-blob format (`sealing`: pure, no I/O), the key ring (`keys`,
which also reads and creates the embedded key file), signatures, tokens, password hashing
and digests. Imports nothing of the project but settings and errors."""
