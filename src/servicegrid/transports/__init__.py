"""Transports: where foreign I/O libraries meet the error table."""
