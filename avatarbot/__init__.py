"""Avatar Bot's own logic that is not Discord glue: settings, storage, policy, the queue."""
