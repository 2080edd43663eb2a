"""HTTP routes of the integration service."""
