"""Runtime of the shell: configuration, logging, the run loop, its context and the node registry."""
