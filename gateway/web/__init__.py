"""``x12gw serve``: the gateway's one HTTP process.

:func:`gateway.web.app.create_app` builds a Starlette application from mounts, one per area: health
and metrics at the root (``/healthz``, ``/readyz``, ``/metrics``), the operators' console under
``/console``; the HTTP API and FHIR endpoints of later work mount beside them. Every area reads the
same store the run loop writes, through read transactions that never block it.
"""
