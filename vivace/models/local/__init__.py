"""In-process local models (optional extras): ``llamacpp/<path-to.gguf>``."""
