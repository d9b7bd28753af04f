"""The replay service (`shopstream replay`): rebuild any projection from the log into a shadow
generation beside the live one (`runner`, `targets`), prove parity with the live one at the same
offset vector (`compare`), promote it atomically, drop the old one (`service`)."""
