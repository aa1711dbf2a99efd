"""A service's life: the runner (start, stop, drain), bootstrap (``main``), ops HTTP."""
