"""Model registries: named, versioned trained models with their metrics."""
