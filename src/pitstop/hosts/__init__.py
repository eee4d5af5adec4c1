"""Hosts: running commands over SSH or locally, and actuators for container runtimes and etcd."""
