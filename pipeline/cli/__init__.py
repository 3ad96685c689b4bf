"""The `pipeline` command line: the stage commands (each calls the function its stage module runs under DVC) and
the commands that are not stages."""
