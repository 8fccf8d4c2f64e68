"""The annotation app: people label a study's answers in the browser."""
