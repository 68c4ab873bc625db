"""The flow engine: plans a flow's bindings and runs its stages. No Flask routes here."""
