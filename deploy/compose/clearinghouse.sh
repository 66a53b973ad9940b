#!/bin/sh
# Start the payer simulator's responder on the served folder (its own SFTP listener stays on loopback,
# unused), then OpenSSH in the foreground. Both stop with the container.
set -eu
mkdir -p /srv/clearinghouse/inbound /srv/clearinghouse/outbound
chown -R x12gw-sftp /srv/clearinghouse
su -s /bin/sh x12gw-sftp -c "umask 077; x12gw sim --root /srv/clearinghouse --host 127.0.0.1 --port 0" &
exec /usr/sbin/sshd -D -e
