"""Consent events (append-only), current state, history."""
