"""What a tenant asks consent for: purposes, versioned notices, vendors, identifier types."""
