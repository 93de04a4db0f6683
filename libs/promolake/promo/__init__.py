"""Promotion engine: offers and their costs, response and uplift models, budget-constrained allocation."""
