"""Channel adapters: one module per channel, each turning provider traffic into hub messages."""
