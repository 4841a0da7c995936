"""What the API handlers, the CLI and the flow call: reads and writes against Prefect and the forges."""
