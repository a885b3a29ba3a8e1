"""Knowledge base: articles, search, import and evaluation."""
