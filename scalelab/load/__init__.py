"""Load generation: Locust as its own process (``runner``) on a phase-shaped locustfile."""
