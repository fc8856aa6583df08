"""tunelake: settings, shared clients, the CLI and the local stack."""
