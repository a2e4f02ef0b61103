"""cinestrain inference package."""
