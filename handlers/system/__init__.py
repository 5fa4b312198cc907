"""The system kind: disk, memory, file handles and processes of this host."""
