"""chainsentry: the composition root (config, CLI, pipeline, transports, API)."""
