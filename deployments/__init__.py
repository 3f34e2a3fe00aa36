"""Ray Serve deployments: thin wrappers around the Ray-free cores in ``percept``."""
