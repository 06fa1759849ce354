"""The providers Accord sends through, each behind the same protocol."""
