"""Customer data from the firm: the import, and the directory the console reads it from."""
