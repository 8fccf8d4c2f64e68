"""The report statistics, one module each; every module here registers itself on import
(``harmeval_metrics.registry`` imports them all)."""
