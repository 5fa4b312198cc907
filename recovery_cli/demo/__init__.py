"""``recovery demo``: a lab of real services the command owns, broken and recovered in front
of the user through the real orchestrator, state dir and audit trail."""
