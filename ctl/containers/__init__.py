"""Containers: the static configuration of a container, apart from any running task.

``container`` holds the record, ``protocol`` the ``ContainerStore`` protocol,
``store`` the on-disk store, ``create`` the flags-to-spec translation. This package
module is empty on purpose, as ``ctl.images``'s is.
"""
