"""Policy: pre-certification rules and claim-to-authorization matching. Pure, like the core."""
