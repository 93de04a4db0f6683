"""Models layer: recommenders and their offline evaluation."""
