"""Images: names that point at a target descriptor (an OCI index or manifest).

``image`` holds the record and the ``ImageStore`` protocol, ``store`` the
on-disk store, ``manifests`` the walk from a target to its platform manifest,
config and layers, ``pull``/``push``/``unpack``/``archive`` the operations.
This package module is empty on purpose: importing ``ctl.images.store`` for a
listing must not import typing.
"""
