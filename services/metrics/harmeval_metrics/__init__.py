"""harmeval metrics service: agreement between coders and harm rankings of models."""
