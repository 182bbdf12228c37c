"""Venue connectors: one folder per venue with the same files, shared mechanism beside them."""
