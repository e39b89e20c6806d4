"""Customer-feedback chat bot backend."""
