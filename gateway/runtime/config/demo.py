"""The demo configuration (one partner: the local clearinghouse simulator)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from gateway.runtime.config.loading import parse_config
from gateway.runtime.config.models import GatewayConfig

# --------------------------------------------------------------------------------------------- demo


def demo_config_text(base_dir: Path, sim_port: int, sim_host_key_line: str, key_file: Path) -> str:
    """A complete TOML configuration for the demo: one partner, the local simulator on 127.0.0.1.

    ``base_dir`` is where the file will live (folders are its subfolders); write the text there so a
    user can read and edit what the demo ran with.
    """

    def q(value: str) -> str:
        return json.dumps(value)  # a JSON string is a valid TOML basic string

    key = Path(key_file)
    if key.is_absolute() and key.is_relative_to(base_dir):
        key = key.relative_to(base_dir)  # keeps the demo folder relocatable

    return f"""\
# Demo configuration written by `x12gw demo`; see config/gateway.example.toml for every key.
[gateway]
usage = "T"

[identity]
isa_qualifier = "ZZ"
isa_id = "X12GATEWAY"
gs_id = "X12GATEWAY"
trace_assigner = "9X12GATEWY"

[inbox]
stable_seconds = 0.2

[[partners]]
name = "sim-clearinghouse"
host = "127.0.0.1"
port = {int(sim_port)}
username = "x12gw"
key_file = {q(str(key))}
host_keys = [{q(sim_host_key_line)}]
upload_dir = "/inbound"
download_dir = "/outbound"
after_download = "delete"
poll_seconds = 1
timeout_seconds = 10
retry_attempts = 3
pause_minutes = 1
isa_qualifier = "ZZ"
isa_id = "SIMCLEARING"
gs_id = "SIMCLEARING"

[routing]
default_partner = "sim-clearinghouse"

[fhir.payers]  # the PAS examples' insurer (named by NPI) is this clearinghouse's payer MCIC01
"http://hl7.org/fhir/sid/us-npi|1234567893" = "MCIC01"
"""


def default_demo_config(
    base_dir: Path, sim_port: int, sim_host_key_line: str, key_file: Path
) -> GatewayConfig:
    """The demo's configuration (``demo_config_text`` parsed with ``base_dir`` as its folder)."""
    text = demo_config_text(base_dir, sim_port, sim_host_key_line, key_file)
    return parse_config(tomllib.loads(text), base_dir)
