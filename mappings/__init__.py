"""Pure mappings: validated 271/278 responses into eligibility results and authorization records."""
