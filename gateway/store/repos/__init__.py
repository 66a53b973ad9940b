"""One repository per area of the store, all sharing one transaction (see ``gateway.store.store.Tx``)."""
