"""Background jobs: the queue adapters and the handlers they run."""
