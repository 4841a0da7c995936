"""prefect-pipelines: Rancher-2-style CI/CD pipelines as a Prefect 3 plugin."""

__version__ = "0.1.0"
