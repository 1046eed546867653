"""genlab."""
