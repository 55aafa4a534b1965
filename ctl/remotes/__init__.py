"""Registry access (OCI distribution API); the only package that imports ``requests``.

Modules, cheapest first:
  hosts      which host serves a domain, loopback and plain-HTTP rules, ca.crt lookup
  auth       ``CredentialStore`` (docker's config.json and credential helpers),
             ``Unauthorized``, WWW-Authenticate parsing; standard library only
  transport  scheme choice, TLS trust, tokens, redirects, retries (imports requests)
  registry   ``Registry`` and ``BlobStream``, the client pull and push use

Nothing is imported here, so ``ctl.remotes.auth`` stays cheap to import.
"""
