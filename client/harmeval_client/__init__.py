"""The client side of harmeval: the `harmeval` command, study files, importers and the
study workflow, talking to the services over gRPC."""
