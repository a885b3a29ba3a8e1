"""Bot backends behind one `Bot` interface: the embedded bot and (later) Rasa over HTTP."""
