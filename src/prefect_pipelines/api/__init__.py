"""The Rancher-shaped /v3 facade (FastAPI)."""
