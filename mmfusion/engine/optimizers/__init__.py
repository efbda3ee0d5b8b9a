"""Optimizer wrapper constructors, registered into ``mmengine.registry`` (seen from every scope)."""
