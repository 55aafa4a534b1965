"""The runtime layer: OCI spec generation, flag parsing for run/create, runc and the supervisor.

``spec`` builds runc's config.json from small pure options, ``runopts`` turns
flag values into typed values, ``users`` resolves users inside a rootfs.
"""
