"""One module per group of ``bacon`` verbs; each function takes the parsed arguments, returns a status."""
