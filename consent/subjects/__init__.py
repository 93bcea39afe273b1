"""Subjects (random ids), their identifiers (HMAC-indexed, encrypted) and identity linking."""
