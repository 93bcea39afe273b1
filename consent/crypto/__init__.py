"""Key hierarchy and primitives: KEK -> per-subject data keys, lookup HMAC key, signing key."""
