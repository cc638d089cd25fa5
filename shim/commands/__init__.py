"""iron's own commands, one module each, imported only when called."""
