"""Container profiles: what an admitted container may do, after Kubernetes' Pod Security Standards.

Three profiles, ``privileged`` (anything), ``baseline`` (no known privilege escalation: the default) and
``restricted`` (hardened), chosen per level in the configuration (``[levels.Low] profile = …``) with
narrow allowances on top (``[levels.Low.allow]``). BACON adds to Kubernetes' controls the places where
nerdctl runs host code or touches host files as root for the operator. docs/profiles.md is the table.

The decision is a pure function over data, in two halves that never meet IO:

- :mod:`shim.admission.profiles.request`: :class:`~shim.admission.profiles.request.Requested`, the privileges a
  container (or a command) asks for, normalized. It can be built from a nerdctl command line
  (:mod:`shim.admission.profiles.from_argv`) or from an OCI runtime spec (a runtime gate's ``config.json``).
- :mod:`shim.admission.profiles.rules`: :func:`~shim.admission.profiles.rules.refusals_of` applies a profile and its
  allowances (:class:`~shim.admission.profiles.rules.Settings`) to a ``Requested`` and returns every refusal, each
  naming the option, the profile, the rule and the configuration line that would allow it.

:mod:`shim.admission.profiles.settings` reads the configuration's profile keys. Standard library only.
"""
