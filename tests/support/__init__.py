"""Real services on loopback for the tests and benchmarks: started here, torn down here."""
