"""harmeval: which small LLM is more harmful, and can a large LLM judge it instead of people?

This package holds what the three services and the CLI share: settings, the gRPC server
skeleton, the database layer, logging, Prometheus metrics, the prompt sets, and the generated
gRPC stubs (`harmeval.<service>.v1`).
"""
