"""Image search: scraping, background removal, pyramid blending, colour and embedding search.

Ray-free cores; ``deployments/search.py`` wraps them and ``percept/api/search.py`` serves them.
"""
