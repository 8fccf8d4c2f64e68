"""Generator service: serves small LLMs and stores every answer with its parameters."""
