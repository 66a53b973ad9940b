#!/bin/sh
# One-shot: the gateway's client key, the clearinghouse host key and the known_hosts line that pins it.
# Idempotent: existing keys are kept, so the pin survives restarts.
set -eu
cd /keys
[ -f gateway_ed25519 ] || ssh-keygen -q -t ed25519 -N "" -C x12gw -f gateway_ed25519
[ -f clearinghouse_host_ed25519 ] || ssh-keygen -q -t ed25519 -N "" -C clearinghouse -f clearinghouse_host_ed25519
printf 'clearinghouse %s\n' "$(cut -d' ' -f1,2 clearinghouse_host_ed25519.pub)" > known_hosts
chown 10001:10001 gateway_ed25519 known_hosts
chmod 0600 gateway_ed25519 clearinghouse_host_ed25519
chmod 0644 gateway_ed25519.pub known_hosts
