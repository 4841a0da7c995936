"""Where steps run: `docker` (a container per step) and `process` (the host's shell)."""
