"""Use cases: each function is one thing a host, app or producer does."""
