"""Route modules of the /v3 facade, one per resource."""
