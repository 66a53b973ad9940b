"""The shell: configuration, store, inbox, SFTP, run loop, logging and the ``x12gw`` CLI."""
