"""Tenants, properties, API keys, authentication and scopes."""
