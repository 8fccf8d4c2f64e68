"""harmeval judge service: scores small-model answers with LLM judges and classifiers."""
