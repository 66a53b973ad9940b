"""The gateway's configuration: one TOML file, validated completely at start-up.

The package: ``models`` (the frozen config objects and the checks they run), ``reader`` (typed TOML
getters that collect problems), ``sections`` (the global tables), ``partners`` (the [[partners]]
tables), ``loading`` (finding, reading and checking the file), ``demo`` (the demo's file).

Why it is built this way:

* Every problem names its key (``partners[1].host_keys: ...``) and all problems are reported at
  once, so an operator fixes the file in one pass instead of one error per restart.
* Unknown keys are errors: a misspelt option must not silently fall back to its default.
* Secrets never live in the file. The file names environment variables (``password_env``), which are
  read when the secret is used (``PartnerConfig.password()``), registered with the log redactor, and
  never stored on the frozen config objects (so they cannot leak through ``repr``).
* Relative paths are resolved against the configuration file's folder, not the working directory,
  so the gateway behaves the same whoever starts it from wherever.
* Host keys are pinned: each partner needs ``host_keys`` or a ``known_hosts_file``; unknown server
  keys are never accepted.
"""

from __future__ import annotations

from gateway.runtime.config.demo import default_demo_config, demo_config_text
from gateway.runtime.config.loading import config_path, load_config, parse_config
from gateway.runtime.config.models import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    DEFAULT_FILE_NAME_PATTERN,
    DEFAULT_MEMBER_HASH_KEY_ENV,
    DEFAULT_PAYLOAD_KEY_ENV,
    FILE_NAME_FIELDS,
    FOLDER_NAMES,
    ISA_QUALIFIERS,
    LOG_LEVELS,
    MEMBER_HASH_KEY_FILE,
    MIN_MEMBER_HASH_KEY_LENGTH,
    RETENTION_KINDS,
    SCHEMA,
    AfterDownload,
    ApiConfig,
    FhirConfig,
    FoldersConfig,
    GatewayConfig,
    GatewaySettings,
    IdentityConfig,
    InboxConfig,
    LogFormat,
    MappingsConfig,
    OutboxConfig,
    PartnerConfig,
    PrecertConfig,
    RetentionConfig,
    RoutingConfig,
    TimeoutsConfig,
    Usage,
    X12Mode,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_NAME",
    "DEFAULT_FILE_NAME_PATTERN",
    "DEFAULT_MEMBER_HASH_KEY_ENV",
    "DEFAULT_PAYLOAD_KEY_ENV",
    "FILE_NAME_FIELDS",
    "FOLDER_NAMES",
    "ISA_QUALIFIERS",
    "LOG_LEVELS",
    "MEMBER_HASH_KEY_FILE",
    "MIN_MEMBER_HASH_KEY_LENGTH",
    "RETENTION_KINDS",
    "SCHEMA",
    "AfterDownload",
    "ApiConfig",
    "FhirConfig",
    "FoldersConfig",
    "GatewayConfig",
    "GatewaySettings",
    "IdentityConfig",
    "InboxConfig",
    "LogFormat",
    "MappingsConfig",
    "OutboxConfig",
    "PartnerConfig",
    "PrecertConfig",
    "RetentionConfig",
    "RoutingConfig",
    "TimeoutsConfig",
    "Usage",
    "X12Mode",
    "config_path",
    "default_demo_config",
    "demo_config_text",
    "load_config",
    "parse_config",
]
