"""Search algorithms, one module each."""
