"""Ray Data jobs: map_batches over the same cores the deployments serve."""
