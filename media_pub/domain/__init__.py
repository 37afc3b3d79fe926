"""Pure rules and values: statuses and their transitions, GUIDs, slugs, storage keys. Stdlib only."""
