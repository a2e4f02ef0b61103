"""cinestrain node package."""
