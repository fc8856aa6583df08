"""tunelake's base layer: the one settings object, shared clients, log configuration."""
