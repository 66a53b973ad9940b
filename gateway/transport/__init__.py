"""Transports to trading partners: the SFTP client and the SSH keys it pins and presents."""
