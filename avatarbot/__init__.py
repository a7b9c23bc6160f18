"""Avatar Bot's own logic that is not Discord glue: settings, storage, policy, the queue."""

__version__ = "0.2.0"
