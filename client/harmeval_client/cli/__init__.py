"""The `harmeval` command line: a gRPC client of the three services."""
