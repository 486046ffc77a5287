"""Training: supervised checks of the cores and A2C for recurrent memory policies."""
