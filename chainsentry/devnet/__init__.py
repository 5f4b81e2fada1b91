"""Development chain helpers: the anvil launcher and a traffic generator."""
