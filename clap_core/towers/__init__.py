"""Audio and text towers, and the registry that builds one from its config."""
