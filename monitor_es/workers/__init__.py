"""Long-running loops: partition reducer workers, the pulser, the system-incident aggregator."""
