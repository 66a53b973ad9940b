"""The operators' side of the gateway: read the store to answer "did it go out, was it accepted, what
did the payer say, why is it stuck", and put stuck work back in front of the run loop.

* :mod:`~gateway.operators.queries` and :mod:`~gateway.operators.views`: listings and full views as
  JSON-able dicts, from read-only store transactions;
* :mod:`~gateway.operators.x12view`: stored X12 with the implementation guides' loop and element names;
* :mod:`~gateway.operators.masking`: names, member ids and birth dates masked unless revealed;
* :mod:`~gateway.operators.actions`: ``reprocess`` and ``resend``, each exactly once;
* :mod:`~gateway.operators.session`, :mod:`~gateway.operators.formatting`,
  :mod:`~gateway.operators.render`, :mod:`~gateway.operators.cli`: the command-line plumbing used by
  ``gateway.cli.log_cmd``, ``auth_cmd`` and ``ops_cmd``.
"""
