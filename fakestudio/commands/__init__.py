"""CLI commands, one module per family; registered lazily in fakestudio/cli.py."""
