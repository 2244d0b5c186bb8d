"""sifmodel: prompts, rewards, training recipes, merge and inference backends for SIF models."""
