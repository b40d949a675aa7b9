"""Task families, one folder each, and what they share: the contract, the registry, tables, sampling, metrics."""
