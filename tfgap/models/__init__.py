"""The networks of the papers, with the normalization layer injected."""
